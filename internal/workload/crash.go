package workload

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// W4 runs its workers in child processes so that it can kill one with SIGKILL. A child is a
// program of the harness's own (the brisk command, a peer harness) that serves the run's
// queue with CrashHandler writing to its standard output, and stops when its standard input
// ends (ServeCrashWorker does both).

// CrashHandler returns the handler of W4's worker processes: it writes "start <seq>
// <unix_ns>" when it starts and "done <seq>" when it is about to return, one unbuffered line
// each to w, and sleeps `sleep` in between (cut short, with an error, when ctx ends).
func CrashHandler(w io.Writer, sleep time.Duration) Handler {
	var mu sync.Mutex // one write per line, lines never interleaved
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, format, a...)
	}
	return func(ctx context.Context, p []byte) error {
		seq := Field(p, "i")
		say("start %d %d\n", seq, time.Now().UnixNano())
		SleepCtx(ctx, sleep)
		if err := ctx.Err(); err != nil {
			return err
		}
		say("done %d\n", seq)
		return nil
	}
}

// ServeCrashWorker is the body of a W4 worker process: start starts a worker that runs the
// given handler (CrashHandler writing to stdout), and the worker is stopped when stdin ends
// (the parent closes it, or dies) or ctx is done.
func ServeCrashWorker(ctx context.Context, stdin io.Reader, stdout io.Writer, sleep time.Duration,
	start func(ctx context.Context, h Handler) (stop func() error, err error)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop, err := start(ctx, CrashHandler(stdout, sleep))
	if err != nil {
		return err
	}
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		cancel()
	}()
	<-ctx.Done()
	return stop()
}

// crashEvents collects the lines of W4's worker processes.
type crashEvents struct {
	mu     sync.Mutex
	starts map[int][]crashStart // by task sequence number, in order
	done   map[int]bool
}

type crashStart struct {
	child int   // 1: the killed process, 2: its replacement
	at    int64 // Unix nanoseconds
}

// read parses one child's standard output until it ends, then closes eof.
func (ev *crashEvents) read(child int, r io.Reader, eof chan<- struct{}) {
	defer close(eof)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && f[0] == "start":
			seq, err1 := strconv.Atoi(f[1])
			ns, err2 := strconv.ParseInt(f[2], 10, 64)
			if err1 != nil || err2 != nil {
				continue
			}
			ev.mu.Lock()
			ev.starts[seq] = append(ev.starts[seq], crashStart{child, ns})
			ev.mu.Unlock()
		case len(f) == 2 && f[0] == "done":
			seq, err := strconv.Atoi(f[1])
			if err != nil {
				continue
			}
			ev.mu.Lock()
			ev.done[seq] = true
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

// unfinished returns the tasks that started last in child and are not done.
func (ev *crashEvents) unfinished(child int) []int {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	var seqs []int
	for seq, ss := range ev.starts {
		if !ev.done[seq] && ss[len(ss)-1].child == child {
			seqs = append(seqs, seq)
		}
	}
	return seqs
}

// workerChild is one W4 worker process.
type workerChild struct {
	n      int
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *tailBuffer
	eof    chan struct{} // closed when its standard output ends: it has exited
	once   sync.Once
}

func startChild(n int, command func() (*exec.Cmd, error), ev *crashEvents) (*workerChild, error) {
	cmd, err := command()
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

// exited returns an error when the child has exited (it was not told to), with the last line
// it wrote to standard error.
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

// kill ends the child with SIGKILL and reaps it. It is idempotent, and a no-op after stop.
func (c *workerChild) kill() {
	c.once.Do(func() {
		_ = c.cmd.Process.Kill()
		c.reap()
	})
}

// stop closes the child's standard input, gives it grace to stop, then kills it.
func (c *workerChild) stop(grace time.Duration) {
	c.once.Do(func() {
		_ = c.stdin.Close()
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-c.eof:
		case <-t.C:
			_ = c.cmd.Process.Kill()
		}
		c.reap()
	})
}

// reap waits for the child's output to end (read to the end before Wait closes the pipe)
// and for the process.
func (c *workerChild) reap() {
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-c.eof:
	case <-t.C:
	}
	_ = c.cmd.Wait()
	_ = c.stdin.Close()
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

// W4 is the crash workload: n tasks whose handler sleeps W4Sleep, enqueued in batches; a
// worker process (made by command) is killed with SIGKILL half a task after half of them
// are done, and a new one is started at once; W4 then waits up to wait for every task to be
// done. Figures: lost (never done; null when the wait ended first, see not_done_at_end),
// duplicates (started twice or more), interrupted (running when killed), redelivery_s (from
// the kill until the last interrupted task started again; null when none was interrupted).
func (ru *Runner) W4(ctx context.Context, n int, wait time.Duration, command func() (*exec.Cmd, error)) (*Result, error) {
	ru.progress("enqueueing %d tasks of %s each", n, W4Sleep)
	if _, err := ru.EnqueueAll(ctx, 0, n, nil); err != nil {
		return nil, err
	}
	ev := &crashEvents{starts: make(map[int][]crashStart, n), done: make(map[int]bool, n)}
	ru.progress("starting a worker process; it is killed when %d tasks are done", (n+1)/2)
	c1, err := startChild(1, command, ev)
	if err != nil {
		return nil, err
	}
	defer c1.kill()
	if err := WaitCount(ctx, func() (int, error) {
		if err := c1.exited(); err != nil {
			return 0, err
		}
		return ev.doneCount(), nil
	}, (n+1)/2, StallTimeout, nil); err != nil {
		return nil, err
	}
	// Half a task later, so that the kill lands mid-task whatever the system's rhythm:
	// handlers that start together end together, and a kill at the very moment a wave ends
	// would interrupt almost nothing.
	SleepCtx(ctx, W4Sleep/2)
	killedAt := time.Now()
	c1.kill()
	doneAtKill := ev.doneCount()
	interrupted := ev.unfinished(1)
	ru.progress("killed it with SIGKILL with %d done and %d running; started another; waiting up to %s", doneAtKill, len(interrupted), wait)

	c2, err := startChild(2, command, ev)
	if err != nil {
		return nil, err
	}
	defer c2.kill()
	var childErr error
	finished := WaitFor(ctx, func() int {
		if err := c2.exited(); err != nil {
			childErr = err
			return n // stop waiting
		}
		if d := ev.doneCount(); d < n {
			return d
		}
		left, err := ru.System.Remaining(ctx) // the acks follow the "done" lines
		if err != nil || left > 0 {
			return n - 1
		}
		return n
	}, n, 5*time.Millisecond, wait)
	if childErr != nil {
		return nil, childErr
	}
	waited := time.Since(killedAt)
	c2.stop(10 * time.Second)

	ev.mu.Lock()
	defer ev.mu.Unlock()
	notDone, dups := 0, 0
	for seq := range n {
		if !ev.done[seq] {
			notDone++
		}
		if len(ev.starts[seq]) > 1 {
			dups++
		}
	}
	var redelivery any // null when nothing was interrupted or something never started again
	if len(interrupted) > 0 {
		last := time.Duration(0)
		for _, seq := range interrupted {
			i := slices.IndexFunc(ev.starts[seq], func(s crashStart) bool { return s.child == 2 })
			if i < 0 {
				last = -1
				break
			}
			last = max(last, time.Duration(ev.starts[seq][i].at-killedAt.UnixNano()))
		}
		if last >= 0 {
			redelivery = Round(last.Seconds(), 3)
		}
	}
	r := &Result{}
	r.Add("tasks", "tasks", n, "")
	r.Add("done_at_kill", "done when killed", doneAtKill, "")
	r.Add("interrupted", "interrupted (running when killed)", len(interrupted), "")
	if finished {
		r.Add("lost", "lost (never done)", notDone, "")
	} else {
		r.Add("lost", "lost (never done)", nil, "")
		r.Add("not_done_at_end", "not done when the wait ended", notDone, "")
	}
	r.Add("duplicates", "duplicates (started twice or more)", dups, "")
	r.Add("redelivery_s", "redelivery (kill to last interrupted restart)", redelivery, "s")
	r.Add("waited_s", "waited after the kill", Round(waited.Seconds(), 1), "s")
	return r, nil
}
