package pgbroker

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/briskq/brisk/broker"
)

// Options configures a Broker.
type Options struct {
	// Pool says how to connect (host, database, user, TLS, pool size): a pgxpool
	// configuration, as pgxpool.ParseConfig makes it from a connection URL. Required.
	// OpenOptions sets the runtime parameter statement_timeout to StatementTimeout and
	// application_name to "brisk" unless they are set.
	Pool *pgxpool.Config

	// Schema is the PostgreSQL schema that holds the broker's tables, created by the
	// migrations if needed: lower-case letters, digits and "_", starting with a letter or
	// "_", at most 48 bytes. Several stores (or tests) share one database through different
	// schemas. Default "brisk".
	Schema string

	// MaxPayload is the largest payload Enqueue accepts, in bytes.
	// Default broker.DefaultMaxPayload (1 MiB).
	MaxPayload int

	// StatementTimeout bounds every statement of the broker's own connections (the
	// session's statement_timeout); a statement that takes longer fails with an error
	// wrapping broker.ErrUnavailable. EnqueueTx runs in the application's transaction and
	// keeps its settings. Default 10s.
	StatementTimeout time.Duration

	// AcquireTimeout is how long a call waits for a free connection of the pool before it
	// fails with an error wrapping broker.ErrUnavailable that says the pool is exhausted.
	// Default 5s.
	AcquireTimeout time.Duration

	// PollInterval is the longest a Wait sleeps without looking at the database, in case a
	// notification was lost. While the notification connection is down, Wait looks every
	// 100 ms. Default 1s.
	PollInterval time.Duration

	// VacuumInterval is how often the broker checks the server's statistics and runs VACUUM
	// on its tasks and counts tables when one has more than 10,000 dead rows, so that a
	// long run does not slow down where autovacuum is off or too slow for a queue's churn.
	// Negative: never (leave it to autovacuum). Default 10s.
	VacuumInterval time.Duration

	// SyncWorkerCommits makes the statements of workers (reserve, extend, ack, retry,
	// kill, release) wait for the WAL flush at commit like every other statement. By
	// default they commit with synchronous_commit off: a server crash may then lose the
	// last fraction of a second of them, which makes tasks run again (at-least-once
	// delivery allows it) and never loses one; enqueues always wait for the flush.
	SyncWorkerCommits bool

	// NoMigrate keeps Open from applying migrations: it fails instead when the schema is
	// not at the version this brisk needs, for teams that apply them with brisk migrate or
	// their own tool.
	NoMigrate bool

	// Logger receives what the broker cannot return as an error (its notification
	// connection dropped and came back). Default: discard.
	Logger *slog.Logger
}

const (
	defaultSchema           = "brisk"
	defaultStatementTimeout = 10 * time.Second
	defaultAcquireTimeout   = 5 * time.Second
	defaultPollInterval     = time.Second
	defaultVacuumInterval   = 10 * time.Second
	maxSchemaLen            = 48
	// maxPayloadLimit keeps a payload, base64-encoded inside the enqueue statement's JSON,
	// below PostgreSQL's 1 GB limit of one value.
	maxPayloadLimit = 512 << 20
)

// withDefaults validates o and fills in the defaults.
func (o Options) withDefaults() (Options, error) {
	bad := func(field string, v any, why string) (Options, error) {
		return o, fmt.Errorf("brisk: postgres: Options.%s = %v: %s: %w", field, v, why, broker.ErrInvalid)
	}
	if o.Pool == nil {
		return bad("Pool", o.Pool, "required (pgxpool.ParseConfig makes one from a URL)")
	}
	if o.Schema == "" {
		o.Schema = defaultSchema
	}
	if err := validSchema(o.Schema); err != nil {
		return bad("Schema", strconv.Quote(o.Schema), err.Error())
	}
	switch {
	case o.MaxPayload < 0:
		return bad("MaxPayload", o.MaxPayload, "must not be negative")
	case o.MaxPayload > maxPayloadLimit:
		return bad("MaxPayload", o.MaxPayload, fmt.Sprintf("at most %d bytes", maxPayloadLimit))
	case o.MaxPayload == 0:
		o.MaxPayload = broker.DefaultMaxPayload
	}
	for _, d := range []struct {
		field string
		v     *time.Duration
		def   time.Duration
	}{
		{"StatementTimeout", &o.StatementTimeout, defaultStatementTimeout},
		{"AcquireTimeout", &o.AcquireTimeout, defaultAcquireTimeout},
		{"PollInterval", &o.PollInterval, defaultPollInterval},
	} {
		switch {
		case *d.v < 0:
			return bad(d.field, *d.v, "must not be negative")
		case *d.v == 0:
			*d.v = d.def
		}
	}
	if o.VacuumInterval == 0 {
		o.VacuumInterval = defaultVacuumInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// validSchema checks a schema name: it is written into statements unquoted, so it must be
// an identifier that PostgreSQL does not fold or need quotes for.
func validSchema(s string) error {
	if s == "" || len(s) > maxSchemaLen {
		return fmt.Errorf("must be 1–%d bytes", maxSchemaLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c == '_':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return fmt.Errorf("character %q not allowed (use lower-case letters, digits and _, not starting with a digit)", c)
		}
	}
	if s == "public" || s == "pg_catalog" || s == "information_schema" || (len(s) >= 3 && s[:3] == "pg_") {
		return fmt.Errorf("reserved or shared schema; choose a schema of brisk's own")
	}
	return nil
}

func init() {
	broker.Register(broker.URLOpener(parseURL, OpenOptions), "postgres", "postgresql")
}

// Open opens a broker on the PostgreSQL database that rawURL names (see the package
// documentation).
func Open(ctx context.Context, rawURL string) (*Broker, error) {
	opts, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return OpenOptions(ctx, opts)
}

// ParseURL turns a postgres:// or postgresql:// URL into Options: brisk's own parameters
// (schema, max_payload, statement_timeout, acquire_timeout, poll, migrate,
// sync_worker_commits, vacuum) are taken out,
// the rest is pgx's (pgxpool.ParseConfig: pool_max_conns, sslmode, connect_timeout, …).
func ParseURL(rawURL string) (Options, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return Options{}, fmt.Errorf("brisk: postgres: url: %v: %w", err, broker.ErrInvalid)
	}
	return parseURL(u)
}

// briskParams are the query parameters brisk reads itself; the others go to pgx.
var briskParams = []string{"acquire_timeout", "max_payload", "migrate", "poll", "schema", "statement_timeout", "sync_worker_commits", "vacuum"}

func parseURL(u *url.URL) (Options, error) {
	var opts Options
	bad := func(format string, args ...any) (Options, error) {
		return opts, fmt.Errorf("brisk: postgres: url %q: %s: %w", u.Redacted(), fmt.Sprintf(format, args...), broker.ErrInvalid)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return bad("scheme %q is not postgres or postgresql", u.Scheme)
	}
	params, err := broker.URLParams(u.RawQuery)
	if err != nil {
		return bad("%v", err)
	}
	duration := func(name, v string, dst *time.Duration) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("parameter %s=%q: want a positive duration such as 5s", name, v)
		}
		*dst = d
		return nil
	}
	rest := url.Values{}
	for _, param := range params {
		name, v := param.Name, param.Values[0]
		var err error
		switch name {
		case "schema":
			if e := validSchema(v); e != nil {
				err = fmt.Errorf("parameter schema=%q: %v", v, e)
			}
			opts.Schema = v
		case "max_payload":
			n, e := strconv.Atoi(v)
			if e != nil || n <= 0 {
				err = fmt.Errorf("parameter max_payload=%q: want a positive number of bytes", v)
			}
			opts.MaxPayload = n
		case "statement_timeout":
			err = duration(name, v, &opts.StatementTimeout)
		case "acquire_timeout":
			err = duration(name, v, &opts.AcquireTimeout)
		case "poll":
			err = duration(name, v, &opts.PollInterval)
		case "vacuum":
			if v == "off" {
				opts.VacuumInterval = -1
			} else {
				err = duration(name, v, &opts.VacuumInterval)
			}
		case "sync_worker_commits":
			switch v {
			case "true", "yes", "1":
				opts.SyncWorkerCommits = true
			case "false", "no", "0":
			default:
				err = fmt.Errorf("parameter sync_worker_commits=%q: want true or false", v)
			}
		case "migrate":
			switch v {
			case "true", "yes", "1":
			case "false", "no", "0":
				opts.NoMigrate = true
			default:
				err = fmt.Errorf("parameter migrate=%q: want true or false", v)
			}
		default:
			rest[name] = param.Values
		}
		if err != nil {
			return bad("%v", err)
		}
	}
	conn := *u
	conn.Scheme = "postgres"
	conn.RawQuery = rest.Encode()
	pc, err := pgxpool.ParseConfig(conn.String())
	if err != nil {
		return bad("%v (brisk's own parameters: %v; the others are pgx's)", err, briskParams)
	}
	opts.Pool = pc
	if _, err := opts.withDefaults(); err != nil {
		return opts, err
	}
	return opts, nil
}
