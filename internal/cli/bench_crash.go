package cli

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

	"github.com/briskq/brisk"
)

// W4 runs its worker in a child process so that it can kill it with SIGKILL: the child is
// this very program running the hidden command below, which reports each handler's start
// and end on standard output, one line per event.

// benchWorkerName is the hidden command that runs W4's worker.
const benchWorkerName = "__bench-worker"

var benchWorkerCmd = &command{
	name:     benchWorkerName,
	hidden:   true,
	synopsis: "--broker URL --queue Q [--concurrency N] [--sleep D]",
	summary:  "run the worker of bench W4 (internal)",
	detail: `
Serves the queue with a handler of type bench.noop that sleeps --sleep. It writes
"start <id> <unix_ns>" when a handler starts and "done <id>" when it returns, one
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
	concurrency := fs.Int("concurrency", benchConcurrency, "run `N` handlers at once")
	sleep := fs.Duration("sleep", w4Sleep, "let each handler sleep `D`")
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
	c, err := openClient(ctx, *brokerURL)
	if err != nil {
		return err
	}
	defer closeClient(c)
	w, err := brisk.NewWorker(c.Broker(), brisk.WorkerConfig{
		Queues:          []brisk.QueueSpec{{Name: *queue}},
		Concurrency:     *concurrency,
		ShutdownTimeout: 5 * time.Second,
	})
	if err != nil {
		return err
	}
	var mu sync.Mutex // one write per line, lines never interleaved
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(e.stdout, format, args...)
	}
	w.HandleFunc(benchTaskType, func(ctx context.Context, t *brisk.Task) error {
		say("start %s %d\n", t.ID, time.Now().UnixNano())
		timer := time.NewTimer(*sleep)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			return ctx.Err()
		}
		say("done %s\n", t.ID)
		return nil
	})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		// The parent closes our standard input to stop us, or dies and it closes.
		_, _ = io.Copy(io.Discard, e.stdin)
		cancel()
	}()
	if err := w.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	return w.Stop()
}

// crashEvents collects the lines of W4's worker processes.
type crashEvents struct {
	mu     sync.Mutex
	starts map[string][]crashStart // by task id, in order
	done   map[string]bool
}

type crashStart struct {
	child int   // 1: the killed process, 2: its replacement
	at    int64 // Unix nanoseconds
}

func newCrashEvents(n int) *crashEvents {
	return &crashEvents{starts: make(map[string][]crashStart, n), done: make(map[string]bool, n)}
}

// read parses one child's standard output until it ends, then closes eof.
func (ev *crashEvents) read(child int, r io.Reader, eof chan<- struct{}) {
	defer close(eof)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && f[0] == "start":
			ns, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil {
				continue
			}
			ev.mu.Lock()
			ev.starts[f[1]] = append(ev.starts[f[1]], crashStart{child, ns})
			ev.mu.Unlock()
		case len(f) == 2 && f[0] == "done":
			ev.mu.Lock()
			ev.done[f[1]] = true
			ev.mu.Unlock()
		}
	}
	_, _ = io.Copy(io.Discard, r) // after a scan error, so that the child never blocks
}

func (ev *crashEvents) doneCount() int {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return len(ev.done)
}

// unfinished returns the tasks that started in child and are not done.
func (ev *crashEvents) unfinished(child int) []string {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	var ids []string
	for id, ss := range ev.starts {
		if !ev.done[id] && ss[len(ss)-1].child == child {
			ids = append(ids, id)
		}
	}
	return ids
}

// workerChild is one W4 worker process.
type workerChild struct {
	n      int
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *tailBuffer
	eof    chan struct{} // closed when its standard output ends: it has exited
	reaped bool
}

func (b *bench) startChild(n int, ev *crashEvents) (*workerChild, error) {
	cmd, err := workerProcess([]string{"--broker", b.url, "--queue", b.queue,
		"--concurrency", strconv.Itoa(b.concurrency), "--sleep", w4Sleep.String()})
	if err != nil {
		return nil, err
	}
	c := &workerChild{n: n, cmd: cmd, stderr: &tailBuffer{max: 4096}, eof: make(chan struct{})}
	cmd.Stderr = c.stderr
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker process: %w", err)
	}
	go ev.read(n, stdout, c.eof)
	return c, nil
}

// exited returns an error when the child has exited (it was not told to).
func (c *workerChild) exited() error {
	select {
	case <-c.eof:
		c.kill()
		msg := strings.TrimSpace(c.stderr.String())
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		return fmt.Errorf("worker process %d exited early (%v): %s", c.n, c.cmd.ProcessState, msg)
	default:
		return nil
	}
}

// kill ends the child with SIGKILL and reaps it, after reading what it wrote. It is
// idempotent.
func (c *workerChild) kill() {
	if c.reaped {
		return
	}
	_ = c.cmd.Process.Kill()
	c.reap(10 * time.Second)
}

// stop asks the child to stop (by closing its standard input) and reaps it; it kills the
// child if it has not exited within grace.
func (c *workerChild) stop(grace time.Duration) {
	if c.reaped {
		return
	}
	_ = c.stdin.Close()
	select {
	case <-c.eof:
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
	}
	c.reap(10 * time.Second)
}

func (c *workerChild) reap(wait time.Duration) {
	select {
	case <-c.eof: // read to the end before Wait closes the pipe
	case <-time.After(wait):
	}
	_ = c.cmd.Wait()
	_ = c.stdin.Close()
	c.reaped = true
}

// tailBuffer keeps the last max bytes written to it (a child's standard error).
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// w4 is the crash workload.
func (b *bench) w4() error {
	n := b.tasks
	fmt.Fprintf(b.progress, "bench: enqueueing %d tasks of %s each\n", n, w4Sleep)
	ids, err := b.enqueueBatches(n, nil)
	if err != nil {
		return err
	}
	ev := newCrashEvents(n)

	fmt.Fprintf(b.progress, "bench: starting a worker process; it is killed when %d tasks are done\n", (n+1)/2)
	c1, err := b.startChild(1, ev)
	if err != nil {
		return err
	}
	defer c1.kill()
	if _, err := b.waitProgress(func() (int, error) {
		if err := c1.exited(); err != nil {
			return 0, err
		}
		return ev.doneCount(), nil
	}, (n+1)/2, 2*time.Millisecond, 0, stallTimeout); err != nil {
		return err
	}
	killedAt := time.Now()
	c1.kill()
	doneAtKill := ev.doneCount()
	interrupted := ev.unfinished(1)
	fmt.Fprintf(b.progress, "bench: killed it with %d done and %d running; starting another\n", doneAtKill, len(interrupted))

	c2, err := b.startChild(2, ev)
	if err != nil {
		return err
	}
	defer c2.kill()
	finished, err := b.waitProgress(func() (int, error) {
		if err := c2.exited(); err != nil {
			return 0, err
		}
		d := ev.doneCount()
		if d < n {
			return d, nil
		}
		left, err := b.remaining() // the acks follow the "done" lines
		if left > 0 {
			return n - 1, err
		}
		return n, err
	}, n, 5*time.Millisecond, w4Timeout, 0)
	if err != nil {
		return err
	}
	if !finished {
		fmt.Fprintf(b.progress, "bench: gave up waiting after %s\n", w4Timeout)
	}
	c2.stop(10 * time.Second)

	ev.mu.Lock()
	defer ev.mu.Unlock()
	lost, dups := 0, 0
	for _, id := range ids {
		if !ev.done[id] {
			lost++
		}
		if len(ev.starts[id]) > 1 {
			dups++
		}
	}
	var redelivery any // null when nothing was interrupted or something never started again
	if len(interrupted) > 0 {
		last := time.Duration(0)
		for _, id := range interrupted {
			i := slices.IndexFunc(ev.starts[id], func(s crashStart) bool { return s.child == 2 })
			if i < 0 {
				last = -1
				break
			}
			last = max(last, time.Duration(ev.starts[id][i].at-killedAt.UnixNano()))
		}
		if last >= 0 {
			redelivery = round(last.Seconds(), 3)
		}
	}
	r := b.out
	r.add("done_at_kill", "done when killed", doneAtKill, "")
	r.add("interrupted", "interrupted (running when killed)", len(interrupted), "")
	r.add("lost", "lost (never done)", lost, "")
	r.add("duplicates", "duplicates (started twice or more)", dups, "")
	r.add("redelivery_s", "redelivery (kill to last interrupted restart)", redelivery, "s")
	return nil
}
