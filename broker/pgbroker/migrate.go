package pgbroker

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/briskq/brisk/broker"
)

// The schema is versioned by the migrations in migrations/, named NNN_what.sql and applied
// in order. {{schema}} in them stands for the broker's schema and {{channel}} for its
// notification channel. The version of a store is the highest row of
// <schema>.schema_version. Never edit a migration that has shipped: add one.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one step of the schema.
type Migration struct {
	// Version is the schema version the step leads to (1, 2, …).
	Version int
	// Name is the file name of the step (001_tables.sql).
	Name string
	// SQL is the step's statements for one schema.
	SQL string
}

// loadMigrations reads the embedded steps in order. Their names are checked by a test, so
// an error here is a bug in this package.
func loadMigrations() []Migration {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		panic("pgbroker: embedded migrations: " + err.Error())
	}
	var out []Migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v != len(out)+1 {
			panic("pgbroker: embedded migration " + e.Name() + " is out of sequence")
		}
		data, err := migrationFiles.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			panic("pgbroker: embedded migrations: " + err.Error())
		}
		out = append(out, Migration{Version: v, Name: e.Name(), SQL: string(data)})
	}
	return out
}

var migrations = loadMigrations()

// SchemaVersion is the schema version this brisk needs: the number of migrations.
var SchemaVersion = len(migrations)

// channel is the notification channel of a schema.
func channel(schema string) string { return schema + ".wake" }

// Migrations returns the steps of the schema for schema (default "brisk"), in order.
func Migrations(schema string) ([]Migration, error) {
	if schema == "" {
		schema = defaultSchema
	}
	if err := validSchema(schema); err != nil {
		return nil, fmt.Errorf("brisk: postgres: schema %q: %v: %w", schema, err, broker.ErrInvalid)
	}
	out := slices.Clone(migrations)
	r := strings.NewReplacer("{{schema}}", schema, "{{channel}}", channel(schema))
	for i := range out {
		out[i].SQL = r.Replace(out[i].SQL)
	}
	return out, nil
}

// MigrationScript returns what Migrate does as one SQL script that a team can review and
// apply with its own tool (psql -1 -f, a migration runner): the schema and its version
// table, and every step with the row that records it, from the version after from to the
// current one (from 0: everything). Apply it in one transaction.
func MigrationScript(schema string, from int) (string, error) {
	steps, err := Migrations(schema)
	if err != nil {
		return "", err
	}
	if schema == "" {
		schema = defaultSchema
	}
	if from < 0 || from > len(steps) {
		return "", fmt.Errorf("brisk: postgres: no schema version %d (this brisk knows 0 to %d): %w", from, len(steps), broker.ErrInvalid)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "-- brisk PostgreSQL schema %s: versions %d to %d. Apply in one transaction.\n", schema, from+1, len(steps))
	sb.WriteString(preamble(schema))
	sb.WriteString(";\n")
	for _, m := range steps[from:] {
		fmt.Fprintf(&sb, "\n-- %s\n%s\n%s;\n", m.Name, strings.TrimSpace(m.SQL), recordVersion(schema, m.Version))
	}
	return sb.String(), nil
}

func preamble(schema string) string {
	return "CREATE SCHEMA IF NOT EXISTS " + schema + ";\n" +
		"CREATE TABLE IF NOT EXISTS " + schema + ".schema_version (\n" +
		"    version    integer     PRIMARY KEY,\n" +
		"    applied_at timestamptz NOT NULL DEFAULT now()\n)"
}

func recordVersion(schema string, v int) string {
	return fmt.Sprintf("INSERT INTO %s.schema_version (version) VALUES (%d)", schema, v)
}

// lockKey names the advisory lock under which a schema is migrated.
func lockKey(schema string) string { return "brisk.migrate." + schema }

// storedVersion returns the version of the schema (0 when it has no version table).
func storedVersion(ctx context.Context, q interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}, schema string) (int, error) {
	var v *int32
	err := q.QueryRow(ctx, `SELECT max(version) FROM `+schema+`.schema_version`).Scan(&v)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000") { // undefined table, schema
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if v == nil {
		return 0, nil
	}
	return int(*v), nil
}

// migrate brings the schema to version target (SchemaVersion unless a test says less) in
// one transaction under an advisory lock, so that brokers opening at once apply each step
// once. It returns the version the schema had.
func migrate(ctx context.Context, conn *pgx.Conn, schema string, target int) (int, error) {
	steps, err := Migrations(schema)
	if err != nil {
		return 0, err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit a no-op
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, lockKey(schema)); err != nil {
		return 0, err
	}
	// Under the lock; a schema_version missing from a fresh schema is created here.
	if _, err := tx.Exec(ctx, preamble(schema)); err != nil {
		return 0, fmt.Errorf("create schema %s: %w", schema, err)
	}
	from, err := storedVersion(ctx, tx, schema)
	if err != nil {
		return 0, err
	}
	if from > len(steps) {
		return from, fmt.Errorf("schema %s is at version %d, newer than this brisk knows (%d): %w", schema, from, len(steps), errNewer)
	}
	for _, m := range steps[from:min(target, len(steps))] {
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return from, fmt.Errorf("migrate schema %s to version %d (%s): %w", schema, m.Version, m.Name, err)
		}
		if _, err := tx.Exec(ctx, recordVersion(schema, m.Version)); err != nil {
			return from, err
		}
	}
	return from, tx.Commit(ctx)
}

var errNewer = errors.New("schema is newer than this brisk")

// Migrate applies the migrations that the schema of the database rawURL names lacks (the
// URL's schema parameter, default brisk) and returns the version it had and the version it
// has now. It is what Open does unless the URL says migrate=false.
func Migrate(ctx context.Context, rawURL string) (from, to int, err error) {
	opts, err := ParseURL(rawURL)
	if err != nil {
		return 0, 0, err
	}
	opts, err = opts.withDefaults()
	if err != nil {
		return 0, 0, err
	}
	conn, err := pgx.ConnectConfig(ctx, connConfig(opts))
	if err != nil {
		return 0, 0, fmt.Errorf("brisk: postgres: migrate: %w: %w", broker.ErrUnavailable, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	from, err = migrate(ctx, conn, opts.Schema, SchemaVersion)
	if err != nil {
		return from, from, fmt.Errorf("brisk: postgres: migrate: %w", err)
	}
	return from, SchemaVersion, nil
}
