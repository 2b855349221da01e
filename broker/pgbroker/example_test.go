package pgbroker_test

import (
	"context"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/briskq/brisk"
	_ "github.com/briskq/brisk/broker/pgbroker" // postgres:// URLs
	"github.com/briskq/brisk/internal/pgtest"
)

// An order and the task that confirms it are written in one transaction of the
// application's: the task exists exactly when the order does. A rolled back order leaves no
// task behind, and a worker never sees a task before its order is committed.
func Example_enqueueTx() {
	ctx := context.Background()
	dbURL := exampleDB() // postgres://postgres@127.0.0.1:5432/test, or $BRISK_POSTGRES_URL
	defer dropExample(dbURL)

	db, err := pgxpool.New(ctx, dbURL) // the application's own pool
	if err != nil {
		panic(err)
	}
	defer db.Close()
	db.Exec(ctx, `CREATE TABLE shop_orders (id bigint PRIMARY KEY, email text NOT NULL)`)
	defer db.Exec(ctx, `DROP TABLE shop_orders`)

	b, err := brisk.Open(ctx, dbURL+"?schema=brisk_example") // brisk's tables in a schema of their own
	if err != nil {
		panic(err)
	}
	defer b.Close()
	client := brisk.NewClient(b)

	type Order struct {
		ID    int    `json:"id"`
		Email string `json:"email"`
	}
	place := func(o Order, commit bool) {
		tx, err := db.Begin(ctx)
		if err != nil {
			panic(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `INSERT INTO shop_orders (id, email) VALUES ($1, $2)`, o.ID, o.Email); err != nil {
			panic(err)
		}
		task, _ := brisk.NewJSONTask("order.confirm", o)
		if _, err := client.EnqueueTx(ctx, tx, task); err != nil { // a *sql.Tx works the same
			panic(err)
		}
		if commit {
			tx.Commit(ctx) // the task becomes visible, and idle workers wake, here
		}
	}
	place(Order{ID: 1, Email: "ada@example.com"}, false) // rolled back: no order, no task
	place(Order{ID: 2, Email: "grace@example.com"}, true)

	done := make(chan struct{})
	w, _ := brisk.NewWorker(b, brisk.WorkerConfig{Queues: []brisk.QueueSpec{{Name: brisk.DefaultQueue}}})
	w.Handle("order.confirm", brisk.JSONHandler(func(ctx context.Context, t *brisk.Task, o Order) error {
		var email string
		db.QueryRow(ctx, `SELECT email FROM shop_orders WHERE id = $1`, o.ID).Scan(&email)
		fmt.Printf("confirming order %d to %s\n", o.ID, email)
		close(done)
		return nil
	}))
	w.Start(ctx)
	<-done
	w.Stop()
	// Output: confirming order 2 to grace@example.com
}

// exampleDB returns the URL of the example's database, without what an earlier run left.
func exampleDB() string {
	url := os.Getenv("BRISK_POSTGRES_URL")
	if url == "" {
		url = pgtest.DefaultURL
	}
	dropExample(url)
	return url
}

// dropExample drops the example's schema and table.
func dropExample(url string) {
	db, err := pgxpool.New(context.Background(), url)
	if err != nil {
		panic(err)
	}
	defer db.Close()
	db.Exec(context.Background(), `DROP SCHEMA IF EXISTS brisk_example CASCADE`)
	db.Exec(context.Background(), `DROP TABLE IF EXISTS shop_orders`)
}
