package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/internal/workload"
)

// W4 runs its worker in a child process so that it can kill it with SIGKILL: the child is
// this very program running the hidden command below (workload.ServeCrashWorker).

// benchWorkerName is the hidden command that runs W4's worker.
const benchWorkerName = "__bench-worker"

var benchWorkerCmd = &command{
	name:     benchWorkerName,
	hidden:   true,
	synopsis: "--broker URL --queue Q [--concurrency N] [--sleep D]",
	summary:  "run the worker of bench W4 (internal)",
	detail: `
Serves the queue with a handler of type bench.noop that sleeps --sleep. It writes
"start <seq> <unix_ns>" when a handler starts and "done <seq>" when it returns, one
unbuffered line each, and runs until its standard input ends or it gets SIGINT/SIGTERM.`,
	run: runBenchWorker,
}

// workerProcess returns the command that runs W4's worker with args (the hidden command's
// flags): this executable with benchWorkerName first. Under "go test" the executable is
// the test binary, whose TestMain hands such arguments to Main, so the same code runs.
var workerProcess = func(args []string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this executable to run the worker process: %w", err)
	}
	return exec.Command(exe, append([]string{benchWorkerName}, args...)...), nil
}

func runBenchWorker(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	brokerURL := brokerFlag(fs)
	queue := fs.String("queue", "", "serve queue `Q` (required)")
	concurrency := fs.Int("concurrency", workload.Concurrency, "run `N` handlers at once")
	sleep := durationFlag(fs, "sleep", workload.W4Sleep, "let each handler sleep `D`")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if *queue == "" {
		return usagef("--queue is required")
	}
	c, err := e.openClient(ctx, *brokerURL, createsStore)
	if err != nil {
		return err
	}
	defer closeClient(c)
	sys := &workload.Brisk{Client: c, Queue: *queue, Worker: brisk.WorkerConfig{Concurrency: *concurrency}}
	return workload.ServeCrashWorker(ctx, e.stdin, e.stdout, *sleep, sys.StartWorker)
}
