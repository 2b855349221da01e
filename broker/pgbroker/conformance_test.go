package pgbroker_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/broker/brokertest"
	"github.com/briskq/brisk/broker/pgbroker"
	"github.com/briskq/brisk/internal/pgtest"
)

// harness gives every test of the suite a schema of its own, dropped at its end, and
// transactions of the application's own: a pgx.Tx and a *sql.Tx (pgx's database/sql
// driver).
func harness(t testing.TB) brokertest.Harness {
	raw := pgtest.URL(t)
	return brokertest.Harness{
		NewURL: func(t testing.TB) string {
			_, u := pgtest.NewSchema(t, raw, "conf")
			return u
		},
		Open:    broker.Open,
		BeginTx: beginTx,
	}
}

// beginTx begins a pgx.Tx and a *sql.Tx on the database of a broker URL; their connections
// are closed when t ends.
func beginTx(t testing.TB, url string) []brokertest.AppTx {
	t.Helper()
	ctx := context.Background()
	opts, err := pgbroker.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.ConnectConfig(ctx, opts.Pool.ConnConfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	ptx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*opts.Pool.ConnConfig)
	t.Cleanup(func() { db.Close() })
	// Ending the context at the end of the test ends a *sql.Tx that a test left open.
	sctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	stx, err := db.BeginTx(sctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	return []brokertest.AppTx{
		{Kind: "pgx.Tx", Tx: ptx, Commit: ptx.Commit, Rollback: ptx.Rollback},
		{Kind: "*sql.Tx", Tx: stx,
			Commit:   func(context.Context) error { return stx.Commit() },
			Rollback: func(context.Context) error { return stx.Rollback() }},
	}
}

func TestConformance(t *testing.T) {
	brokertest.Run(t, harness(t))
}
