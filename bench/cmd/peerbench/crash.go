package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// W4 runs each worker in a child process, this very program with -role worker, so that it
// can be killed with SIGKILL. The child writes "start <seq> <unix_ns>" when a handler
// starts and "done <seq>" when it returns, and stops when its standard input ends.

// runChild is `peerbench -role worker …`.
func runChild(args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	system := fs.String("system", "", "brisk or asynq")
	addr := fs.String("addr", "127.0.0.1:6379", "Redis address")
	db := fs.Int("db", 0, "Redis database")
	prefix := fs.String("prefix", "", "brisk key prefix")
	queue := fs.String("queue", "pb", "queue")
	keepDead := fs.Bool("keep-dead", false, "brisk: do not reap dead workers of this host")
	tuned := fs.Bool("tuned", false, "asynq: short check intervals")
	sleep := fs.Duration("sleep", w4Sleep, "handler sleep")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, format, a...)
		out.Flush()
	}
	h := func(p []byte) {
		seq := field(p, "i")
		say("start %d %d\n", seq, time.Now().UnixNano())
		time.Sleep(*sleep)
		say("done %d\n", seq)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stop func() error
	var err error
	switch *system {
	case "brisk":
		b, e := openBrisk(ctx, *addr, *db, *prefix, nil)
		if e != nil {
			return e
		}
		stop, err = startBriskWorker(ctx, b, *queue, *keepDead, 0, h)
	case "asynq":
		stop, err = startAsynqWorker(redis.NewClient(&redis.Options{Addr: *addr, DB: *db}), *queue, *tuned, h)
	default:
		return fmt.Errorf("unknown -system %q", *system)
	}
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, os.Stdin) // the parent closes it to stop us
	return stop()
}

type crashStart struct {
	child int
	at    int64
}

type crashEvents struct {
	mu     sync.Mutex
	starts map[int][]crashStart
	done   map[int]bool
}

func (ev *crashEvents) read(child int, r io.Reader, eof chan<- struct{}) {
	defer close(eof)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && f[0] == "start":
			seq, _ := strconv.Atoi(f[1])
			ns, _ := strconv.ParseInt(f[2], 10, 64)
			ev.mu.Lock()
			ev.starts[seq] = append(ev.starts[seq], crashStart{child, ns})
			ev.mu.Unlock()
		case len(f) == 2 && f[0] == "done":
			seq, _ := strconv.Atoi(f[1])
			ev.mu.Lock()
			ev.done[seq] = true
			ev.mu.Unlock()
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

func (ev *crashEvents) doneCount() int {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return len(ev.done)
}

func (ev *crashEvents) unfinished(child int) []int {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	var ids []int
	for id, ss := range ev.starts {
		if !ev.done[id] && ss[len(ss)-1].child == child {
			ids = append(ids, id)
		}
	}
	return ids
}

type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	eof   chan struct{}
	once  sync.Once
}

func startChild(n int, args []string, ev *crashEvents) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, append([]string{"-role", "worker"}, args...)...)
	cmd.Stderr = os.Stderr
	c := &child{cmd: cmd, eof: make(chan struct{})}
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go ev.read(n, stdout, c.eof)
	return c, nil
}

func (c *child) exited() bool {
	select {
	case <-c.eof:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and reaps the child.
func (c *child) kill() {
	c.once.Do(func() {
		_ = c.cmd.Process.Kill()
		c.reap()
	})
}

// stop closes the child's standard input, gives it 10 s to stop, then kills it.
func (c *child) stop() {
	c.once.Do(func() {
		_ = c.stdin.Close()
		select {
		case <-c.eof:
		case <-time.After(10 * time.Second):
			_ = c.cmd.Process.Kill()
		}
		c.reap()
	})
}

func (c *child) reap() {
	select {
	case <-c.eof:
	case <-time.After(10 * time.Second):
	}
	_ = c.cmd.Wait()
	_ = c.stdin.Close()
}

// runW4 is the crash workload: n tasks of 50 ms in batches, a worker process killed with
// SIGKILL 25 ms after half are done and restarted at once; it waits up to wait for all to be done.
func runW4(ctx context.Context, s goSystem, n int, wait time.Duration) (result, error) {
	progress("  enqueueing %d tasks of %s each", n, w4Sleep)
	for i := 0; i < n; i += batchSize {
		seqs := make([]int, 0, batchSize)
		for j := i; j < min(n, i+batchSize); j++ {
			seqs = append(seqs, j)
		}
		if err := s.enqueueBatch(ctx, seqs, nil); err == errNoBatch {
			for _, seq := range seqs {
				if err := s.enqueue(ctx, seq, 0); err != nil {
					return nil, err
				}
			}
		} else if err != nil {
			return nil, err
		}
	}
	ev := &crashEvents{starts: map[int][]crashStart{}, done: map[int]bool{}}
	c1, err := startChild(1, s.childArgs(), ev)
	if err != nil {
		return nil, err
	}
	defer c1.kill()
	if err := waitCount(ctx, func() (int, error) {
		if c1.exited() {
			return 0, fmt.Errorf("worker process exited early")
		}
		return ev.doneCount(), nil
	}, (n+1)/2, stallTimeout, nil); err != nil {
		return nil, err
	}
	// Half a task later, so that the kill lands mid-task whatever the system's rhythm:
	// handlers that start together end together, and a kill at the very moment a wave
	// ends would interrupt almost nothing.
	time.Sleep(w4Sleep / 2)
	killedAt := time.Now()
	c1.kill()
	doneAtKill := ev.doneCount()
	interrupted := ev.unfinished(1)
	progress("  SIGKILLed the worker with %d done and %d running; restarted it; waiting up to %s", doneAtKill, len(interrupted), wait)
	c2, err := startChild(2, s.childArgs(), ev)
	if err != nil {
		return nil, err
	}
	defer c2.kill()
	finished := waitFor(ctx, func() int {
		if d := ev.doneCount(); d < n {
			return d
		}
		left, err := s.remaining(ctx)
		if err != nil || left > 0 {
			return n - 1
		}
		return n
	}, n, 5*time.Millisecond, wait)
	waited := time.Since(killedAt)
	c2.stop()

	ev.mu.Lock()
	defer ev.mu.Unlock()
	notDone, dups := 0, 0
	for i := range n {
		if !ev.done[i] {
			notDone++
		}
		if len(ev.starts[i]) > 1 {
			dups++
		}
	}
	r := result{"tasks": n, "done_at_kill": doneAtKill, "interrupted": len(interrupted), "duplicates": dups,
		"finished": finished, "waited_s": round(waited.Seconds(), 1)}
	if finished {
		r["lost"] = notDone
	} else {
		r["not_done_at_end"] = notDone // not lost: the wait ended first
	}
	var redelivery any
	last := time.Duration(0)
	for _, id := range interrupted {
		i := slices.IndexFunc(ev.starts[id], func(s crashStart) bool { return s.child == 2 })
		if i < 0 {
			last = -1
			break
		}
		last = max(last, time.Duration(ev.starts[id][i].at-killedAt.UnixNano()))
	}
	if len(interrupted) > 0 && last >= 0 {
		redelivery = round(last.Seconds(), 3)
	}
	r["redelivery_s"] = redelivery
	return r, nil
}
