package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strings"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/broker/pgbroker"
)

var migrateCmd = &command{
	name:     "migrate",
	synopsis: "--broker postgres://… [--print [--from N]]",
	summary:  "apply or print the PostgreSQL broker's schema migrations",
	detail: `
The PostgreSQL broker keeps its tables in a schema of their own (URL parameter schema,
default brisk) and applies the migrations it lacks when it opens, under an advisory lock.
Teams that apply migrations themselves run this command instead, or print the SQL and feed
it to their own tool, and open the broker with migrate=false in its URL so that it checks
the version and refuses to change the schema.

Without --print it applies what the schema lacks and prints the versions before and after.
With --print it prints the SQL of the versions after --from (default 0: all) and connects
to nothing. Apply the printed script in one transaction (psql -1 -f FILE).

Example:
  brisk migrate --broker 'postgres://app@db:5432/app?schema=jobs' --print --from 1`,
	run: runMigrate,
}

func runMigrate(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	brokerURL := brokerFlag(fs)
	print := fs.Bool("print", false, "print the SQL instead of applying it")
	from := fs.Int("from", 0, "with --print, start after schema version `N` (what the schema has)")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	raw := brisk.BrokerURL(*brokerURL)
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return usagef("migrate needs a PostgreSQL broker URL (postgres://…), not %q; the other brokers need no migrations of yours", brisk.RedactURL(raw))
	}
	if *from != 0 && !*print {
		return usagef("--from goes with --print")
	}
	if *print {
		opts, err := pgbroker.ParseURL(raw)
		if err != nil {
			return err
		}
		script, err := pgbroker.MigrationScript(opts.Schema, *from)
		if err != nil {
			return usagef("%v", strings.TrimPrefix(err.Error(), "brisk: "))
		}
		_, err = fmt.Fprint(e.stdout, script)
		return err
	}
	before, after, err := pgbroker.Migrate(ctx, raw)
	if err != nil {
		return errors.New(strings.ReplaceAll(err.Error(), raw, brisk.RedactURL(raw)))
	}
	opts, _ := pgbroker.ParseURL(raw)
	schema := opts.Schema
	if schema == "" {
		schema = "brisk"
	}
	if before == after {
		_, err = fmt.Fprintf(e.stdout, "schema %s is at version %d: up to date\n", schema, after)
	} else {
		_, err = fmt.Fprintf(e.stdout, "schema %s migrated from version %d to %d\n", schema, before, after)
	}
	return err
}
