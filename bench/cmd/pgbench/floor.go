package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/briskq/brisk/internal/workload"
)

// floor is PostgreSQL's own idle pickup on this machine: the least any queue on
// LISTEN/NOTIFY pays between an enqueue and its handler's start when the worker waits idle.
// A producer commits one durable insert that NOTIFYs in the same statement (one round
// trip); a listener waiting on its own connection takes the notification and claims the row
// with one UPDATE … RETURNING (one round trip). Wake is the time from just before the insert
// to the notification's arrival, pickup to the claim's reply; one row every W3Interval, as
// W3. Percentiles in milliseconds.
type floor struct {
	Rows      int     `json:"rows"`
	WakeP50   float64 `json:"wake_p50_ms"`
	WakeP99   float64 `json:"wake_p99_ms"`
	PickupP50 float64 `json:"pickup_p50_ms"`
	PickupP99 float64 `json:"pickup_p99_ms"`
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

	insert := fmt.Sprintf(`WITH j AS (INSERT INTO %s.jobs (payload) VALUES ($1) RETURNING id) SELECT pg_notify($2, id::text) FROM j`, schema)
	claim := fmt.Sprintf(`UPDATE %s.jobs SET claimed = true WHERE id = $1 AND NOT claimed RETURNING payload`, schema)
	payload := workload.Payload(0, time.Now(), time.Now())
	var wake, pickup []time.Duration
	for range n {
		workload.SleepCtx(ctx, workload.W3Interval)
		start := time.Now()
		claimed := make(chan error, 1)
		go func() {
			note, err := listener.WaitForNotification(ctx)
			if err != nil {
				claimed <- err
				return
			}
			wake = append(wake, time.Since(start))
			id, err := strconv.ParseInt(note.Payload, 10, 64)
			if err != nil {
				claimed <- fmt.Errorf("notification %q: %w", note.Payload, err)
				return
			}
			var p []byte
			err = listener.QueryRow(ctx, claim, id).Scan(&p)
			pickup = append(pickup, time.Since(start))
			claimed <- err
		}()
		if _, err := producer.Exec(ctx, insert, payload, schema); err != nil {
			return nil, fmt.Errorf("floor: insert and notify: %w", err)
		}
		if err := <-claimed; err != nil {
			return nil, fmt.Errorf("floor: claim: %w", err)
		}
	}
	slices.Sort(wake)
	slices.Sort(pickup)
	return &floor{
		Rows:    n,
		WakeP50: workload.Percentile(wake, 0.5), WakeP99: workload.Percentile(wake, 0.99),
		PickupP50: workload.Percentile(pickup, 0.5), PickupP99: workload.Percentile(pickup, 0.99),
	}, nil
}

// print writes the floor beside brisk's W3 p50 (0 when W3 was not run).
func (f *floor) print(w io.Writer, briskW3 float64) {
	fmt.Fprintf(w, "\nPostgreSQL's own idle pickup, same run (%d rows, one every %s: a durable insert that NOTIFYs, one round trip; a listener waiting on its own connection claims the row with one UPDATE … RETURNING):\n\n", f.Rows, workload.W3Interval)
	fmt.Fprintln(w, "| step | p50 (ms) | p99 (ms) |")
	fmt.Fprintln(w, "| --- | --- | --- |")
	fmt.Fprintf(w, "| insert → notification received | %.3g | %.3g |\n", f.WakeP50, f.WakeP99)
	fmt.Fprintf(w, "| insert → row claimed (the floor under W3) | %.3g | %.3g |\n", f.PickupP50, f.PickupP99)
	if briskW3 > 0 {
		fmt.Fprintf(w, "\nbrisk W3 p50 %.3g ms = %.2f× the floor's p50.\n", briskW3, briskW3/f.PickupP50)
	}
}
