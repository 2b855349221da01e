package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/briskq/brisk/internal/workload"
)

// floor is PostgreSQL's own idle pickup on this machine: the least any queue on
// LISTEN/NOTIFY pays between an enqueue and its handler's start when the worker waits idle.
// A producer commits one durable insert with a NOTIFY in the same transaction (one round
// trip); a listener waiting on its own connection takes the notification and claims the row
// with one UPDATE … RETURNING (one round trip). wake is the time from just before the insert
// to the notification's arrival, pickup to the claim's reply. One row every W3Interval, as
// W3.
type floor struct {
	wake, pickup []time.Duration // sorted
}

func runFloor(ctx context.Context, pool *pgxpool.Pool, n int) (*floor, error) {
	schema := newSchema("floor")
	if _, err := pool.Exec(ctx, fmt.Sprintf(`CREATE SCHEMA %[1]s; CREATE TABLE %[1]s.jobs (id bigserial PRIMARY KEY, payload bytea NOT NULL, claimed boolean NOT NULL DEFAULT false)`, schema)); err != nil {
		return nil, fmt.Errorf("floor: create table: %w", err)
	}
	defer dropSchema(context.WithoutCancel(ctx), pool, schema)

	listener, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("floor: listener: %w", err)
	}
	defer listener.Close(context.WithoutCancel(ctx))
	if _, err := listener.Exec(ctx, "LISTEN "+schema); err != nil {
		return nil, fmt.Errorf("floor: listen: %w", err)
	}
	producer, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("floor: producer: %w", err)
	}
	defer producer.Close(context.WithoutCancel(ctx))

	f := &floor{}
	insert := fmt.Sprintf(`INSERT INTO %s.jobs (payload) VALUES ($1) RETURNING id`, schema)
	claim := fmt.Sprintf(`UPDATE %s.jobs SET claimed = true WHERE id = $1 AND NOT claimed RETURNING payload`, schema)
	payload := make([]byte, 100)
	for range n {
		workload.SleepCtx(ctx, workload.W3Interval)
		start := time.Now()
		got := make(chan error, 1)
		go func() {
			note, err := listener.WaitForNotification(ctx)
			if err != nil {
				got <- err
				return
			}
			f.wake = append(f.wake, time.Since(start))
			var id int64
			if _, err := fmt.Sscan(note.Payload, &id); err != nil {
				got <- fmt.Errorf("notification %q: %w", note.Payload, err)
				return
			}
			var p []byte
			err = listener.QueryRow(ctx, claim, id).Scan(&p)
			f.pickup = append(f.pickup, time.Since(start))
			got <- err
		}()
		b := &pgx.Batch{}
		b.Queue(insert, payload)
		b.Queue(`SELECT pg_notify($1, currval(pg_get_serial_sequence($2, 'id'))::text)`, schema, schema+".jobs")
		if err := producer.SendBatch(ctx, b).Close(); err != nil {
			return nil, fmt.Errorf("floor: insert and notify: %w", err)
		}
		if err := <-got; err != nil {
			return nil, fmt.Errorf("floor: claim: %w", err)
		}
	}
	slices.Sort(f.wake)
	slices.Sort(f.pickup)
	return f, nil
}

// print writes the floor beside brisk's W3 p50 (0 when W3 was not run).
func (f *floor) print(w io.Writer, briskW3 float64) {
	fmt.Fprintf(w, "\nPostgreSQL's own idle pickup, same run (%d rows, one every %s: a durable insert with NOTIFY in one transaction, one round trip; a listener waiting on its own connection claims the row with one UPDATE … RETURNING):\n\n", len(f.pickup), workload.W3Interval)
	fmt.Fprintln(w, "| step | p50 (ms) | p99 (ms) |")
	fmt.Fprintln(w, "| --- | --- | --- |")
	fmt.Fprintf(w, "| insert → notification received | %s | %s |\n", g(f.p(f.wake, 0.5)), g(f.p(f.wake, 0.99)))
	fmt.Fprintf(w, "| insert → row claimed (the floor under W3) | %s | %s |\n", g(f.p(f.pickup, 0.5)), g(f.p(f.pickup, 0.99)))
	if briskW3 > 0 {
		fmt.Fprintf(w, "\nbrisk W3 p50 %.3g ms = %.2f× the floor's p50.\n", briskW3, briskW3/f.p(f.pickup, 0.5))
	}
}

func (*floor) p(sorted []time.Duration, q float64) float64 { return workload.Percentile(sorted, q) }

func g(v float64) string { return fmt.Sprintf("%.3g", v) }

// MarshalJSON writes the floor's percentiles for pgbench -json.
func (f *floor) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]float64{
		"wake_p50_ms": f.p(f.wake, 0.5), "wake_p99_ms": f.p(f.wake, 0.99),
		"pickup_p50_ms": f.p(f.pickup, 0.5), "pickup_p99_ms": f.p(f.pickup, 0.99),
	})
}
