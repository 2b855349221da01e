package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/redis/go-redis/v9"

	"github.com/briskq/brisk/bench/internal/asynqrun"
	"github.com/briskq/brisk/internal/workload"
)

// runChild is `peerbench -role worker …`: W4's worker process of one system
// (workload.ServeCrashWorker), stopped when its standard input ends.
func runChild(args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	system := fs.String("system", "", "brisk or asynq")
	addr := fs.String("addr", "127.0.0.1:6379", "Redis address")
	db := fs.Int("db", 0, "Redis database")
	prefix := fs.String("prefix", "", "brisk key prefix")
	queue := fs.String("queue", "pb", "queue")
	keepDead := fs.Bool("keep-dead", false, "brisk: do not reap dead workers of this host")
	tuned := fs.Bool("tuned", false, "asynq: short check intervals")
	sleep := fs.Duration("sleep", workload.W4Sleep, "handler sleep")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx := context.Background()
	var start func(ctx context.Context, h workload.Handler) (func() error, error)
	switch *system {
	case "brisk":
		b, err := openBrisk(ctx, *addr, *db, *prefix, nil)
		if err != nil {
			return err
		}
		defer b.Close()
		s := &briskSystem{}
		s.Brisk = newBriskSystem(b, *queue, *keepDead)
		start = s.StartWorker
	case "asynq":
		start = func(_ context.Context, h workload.Handler) (func() error, error) {
			return asynqrun.StartWorker(redis.NewClient(&redis.Options{Addr: *addr, DB: *db}), *queue, *tuned, h)
		}
	default:
		return fmt.Errorf("unknown -system %q", *system)
	}
	return workload.ServeCrashWorker(ctx, os.Stdin, os.Stdout, *sleep, start)
}
