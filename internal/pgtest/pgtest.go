// Package pgtest gives tests a PostgreSQL to talk to: the URL of a reachable server and a
// fresh schema that is dropped when the test ends.
package pgtest

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/briskq/brisk/internal/testenv"
)

// DefaultURL is the PostgreSQL that scripts/test.sh makes sure of.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test"

// URL returns the URL of the PostgreSQL tests use: $BRISK_POSTGRES_URL, default
// DefaultURL. When it does not answer, the test fails under CI ($CI set) and is skipped out
// loud elsewhere.
func URL(t testing.TB) string {
	t.Helper()
	raw := os.Getenv("BRISK_POSTGRES_URL")
	if raw == "" {
		raw = DefaultURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, raw)
	if err == nil {
		err = conn.Ping(ctx)
		conn.Close(ctx)
	}
	if err != nil {
		testenv.Missing(t, "no PostgreSQL at %s (set BRISK_POSTGRES_URL, or run scripts/test.sh, which starts one): %v", raw, err)
	}
	return raw
}

// NewSchema returns a fresh schema name (starting with name) that is dropped with
// everything in it when t ends, and the broker URL raw with its schema parameter set to it.
func NewSchema(t testing.TB, raw, name string) (schema, brokerURL string) {
	t.Helper()
	// A schema name has "_" where a store prefix has "-".
	ident := func(prefix string) string { return strings.ReplaceAll(prefix, "-", "_") }
	schema = ident(testenv.NewPrefix(t, name, func(prefix string) { Drop(t, raw, ident(prefix)) }))
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("schema", schema)
	u.RawQuery = q.Encode()
	return schema, u.String()
}

// Drop drops a schema and everything in it.
func Drop(t testing.TB, raw, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, raw)
	if err != nil {
		t.Errorf("dropping schema %s: %v", schema, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
		t.Errorf("dropping schema %s: %v", schema, err)
	}
}
