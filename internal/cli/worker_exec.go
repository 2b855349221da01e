package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/internal/apiv1"
)

// The exec handler of "brisk worker --exec": a pool of long-lived child processes, each
// running one task at a time over JSON lines on its standard input and output (the
// protocol of docs/worker-protocol.md).

// execConfig configures an execPool.
type execConfig struct {
	Command  []string // program and arguments
	Size     int      // children
	WorkerID string   // passed as BRISK_WORKER_ID
	Stderr   io.Writer
	Logger   *slog.Logger
	// StopWait is how long children get to exit after their standard input closes, at
	// Close, before they are killed. Default 5s.
	StopWait time.Duration
}

// errStopping: the pool is closing, so a child is not started again.
var errStopping = errors.New("the worker is stopping")

// maxReplyLine bounds one line of a child's standard output.
const maxReplyLine = 1 << 20

// execPool hands each task to a free child. It implements brisk.Handler.
type execPool struct {
	cfg  execConfig
	idle chan *child // the children not running a task

	mu       sync.Mutex
	closed   bool
	children []*child
}

// child is one slot of the pool, and the process that currently fills it (restarted when
// it exits). Only the goroutine that took it from idle uses it, except Close.
type child struct {
	pool  *execPool
	index int

	cmd     *exec.Cmd
	stdin   *os.File      // a pipe in the runtime's poller, so that writes take a deadline
	replies chan []byte   // reply lines, closed when stdout ends
	exited  chan struct{} // closed once the process was waited for
	waitErr error         // the process's exit, valid after exited is closed
	started time.Time
	quick   int // exits in a row within a second of their start
}

// newExecPool starts cfg.Size children. It fails when the command cannot be started.
func newExecPool(cfg execConfig) (*execPool, error) {
	if cfg.StopWait == 0 {
		cfg.StopWait = 5 * time.Second
	}
	p := &execPool{cfg: cfg, idle: make(chan *child, cfg.Size)}
	for i := 0; i < cfg.Size; i++ {
		c := &child{pool: p, index: i}
		if err := c.start(); err != nil {
			p.Close()
			return nil, err
		}
		p.children = append(p.children, c)
		p.idle <- c
	}
	return p, nil
}

// start starts the child's process and the goroutines that read its output.
func (c *child) start() error {
	cfg := c.pool.cfg
	cmd := exec.Command(cfg.Command[0], cfg.Command[1:]...)
	cmd.Env = append(os.Environ(), "BRISK_PROTOCOL=1", "BRISK_WORKER_ID="+cfg.WorkerID, "BRISK_CHILD="+strconv.Itoa(c.index))
	setChildAttr(cmd)
	childIn, stdin, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("--exec: %w", err)
	}
	cmd.Stdin = childIn
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("--exec: %w", err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return fmt.Errorf("--exec: %w", err)
	}
	err = cmd.Start()
	_ = childIn.Close() // the child's end
	if err != nil {
		_ = stdin.Close()
		return fmt.Errorf("--exec: start %s: %w", cfg.Command[0], err)
	}
	c.pool.mu.Lock() // Close reads cmd, stdin and exited of every child
	c.cmd, c.stdin, c.started = cmd, stdin, time.Now()
	c.replies, c.exited = make(chan []byte, 1), make(chan struct{})
	c.pool.mu.Unlock()
	prefix := fmt.Sprintf("[exec %d pid %d] ", c.index, cmd.Process.Pid)
	var readers sync.WaitGroup
	readers.Add(2)
	go func() { defer readers.Done(); copyLines(cfg.Stderr, stderr, prefix) }()
	go func() { defer readers.Done(); c.readReplies(stdout, prefix) }()
	exited := c.exited
	go func() {
		readers.Wait() // Wait closes the pipes: read them to the end first
		c.waitErr = cmd.Wait()
		close(exited)
	}()
	cfg.Logger.Debug("child started", "child", c.index, "pid", cmd.Process.Pid)
	return nil
}

// readReplies sends the lines of stdout that start with "{" to c.replies and copies the
// others to stderr after the prefix (a stray print must not break the protocol).
func (c *child) readReplies(stdout io.Reader, prefix string) {
	replies := c.replies
	defer close(replies)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), maxReplyLine)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) > 0 && line[0] == '{' {
			replies <- append([]byte(nil), line...)
			continue
		}
		writePrefixed(c.pool.cfg.Stderr, prefix, sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		writePrefixed(c.pool.cfg.Stderr, prefix, []byte("brisk: standard output unreadable: "+err.Error()))
	}
}

// copyLines copies r to w line by line, each after prefix.
func copyLines(w io.Writer, r io.Reader, prefix string) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			writePrefixed(w, prefix, bytes.TrimRight(line, "\n"))
		}
		if err != nil {
			return
		}
	}
}

func writePrefixed(w io.Writer, prefix string, line []byte) {
	buf := make([]byte, 0, len(prefix)+len(line)+1)
	buf = append(append(append(buf, prefix...), line...), '\n')
	_, _ = w.Write(buf)
}

// alive reports whether the child's process has not exited.
func (c *child) alive() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// kill kills the child's process (and its process group) and waits for it.
func (c *child) kill() {
	killChild(c.cmd)
	<-c.exited
}

// restart starts a new process in the child's slot after the last one exited, waiting
// first when processes keep exiting at once (100 ms, doubling to 10 s).
func (c *child) restart(ctx context.Context) error {
	if time.Since(c.started) < time.Second {
		c.quick++
	} else {
		c.quick = 0
	}
	if c.quick > 0 {
		delay := min(100*time.Millisecond<<min(c.quick-1, 7), 10*time.Second)
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.pool.mu.Lock()
	closed := c.pool.closed
	c.pool.mu.Unlock()
	if closed {
		return errStopping
	}
	c.pool.cfg.Logger.Warn("child exited; starting it again", "child", c.index, "exit", exitText(c.waitErr))
	return c.start()
}

func exitText(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

// ProcessTask runs t in a free child and turns its answer into the task's outcome.
func (p *execPool) ProcessTask(ctx context.Context, t *brisk.Task) error {
	var c *child
	select {
	case c = <-p.idle:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() {
		// A child killed or exited during the task is started again now, so that the next
		// task does not wait for it under its own timeout (unless it keeps exiting at once:
		// then the next task waits for the backoff).
		if !c.alive() && time.Since(c.started) >= time.Second {
			if err := c.restart(context.WithoutCancel(ctx)); err != nil && !errors.Is(err, errStopping) {
				p.cfg.Logger.Warn("start a child again", "child", c.index, "err", err)
			}
		}
		p.idle <- c
	}()
	if !c.alive() {
		if err := c.restart(ctx); err != nil {
			return fmt.Errorf("start a child: %w", err)
		}
	}
	deadline, _ := ctx.Deadline()
	line, err := json.Marshal(apiv1.FromDelivery(t, deadline))
	if err != nil {
		return brisk.SkipRetry(fmt.Errorf("encode the task: %w", err))
	}
	// Drop a reply line left over from an earlier task (a child that answered twice).
	select {
	case <-c.replies:
	default:
	}
	// A child that does not read its input must not hold the task past its timeout.
	_ = c.stdin.SetWriteDeadline(deadline)
	if _, err := c.stdin.Write(append(line, '\n')); err != nil {
		c.kill()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("child %d (pid %d) killed: it did not read the task: %w", c.index, c.cmd.Process.Pid, context.DeadlineExceeded)
		}
		return fmt.Errorf("child %d (pid %d) did not take the task: %w", c.index, c.cmd.Process.Pid, err)
	}
	for {
		select {
		case reply, ok := <-c.replies:
			if !ok { // stdout ended: the child is exiting
				<-c.exited
				return fmt.Errorf("child %d (pid %d) exited while running the task: %s", c.index, c.cmd.Process.Pid, exitText(c.waitErr))
			}
			out, err := parseOutcome(reply, t.ID)
			if err != nil {
				c.kill()
				return fmt.Errorf("child %d (pid %d): protocol error (the child was restarted): %w", c.index, c.cmd.Process.Pid, err)
			}
			if out.Progress != nil {
				reportProgress(ctx, p.cfg.Logger, t.ID, *out.Progress)
			}
			if out.Status == "" {
				continue // a progress line: the outcome follows
			}
			if out.Status == apiv1.OutcomeOK && len(out.Result) > 0 {
				keepResult(ctx, p.cfg.Logger, t.ID, out.Result, true)
			}
			return outcomeError(out)
		case <-ctx.Done():
			// The task's timeout passed, or its lease was lost, or the shutdown's grace
			// period ended: the child is busy with a task that is no longer ours.
			c.kill()
			return fmt.Errorf("child %d (pid %d) killed: %w", c.index, c.cmd.Process.Pid, ctx.Err())
		}
	}
}

// parseOutcome reads a reply line for the task id.
func parseOutcome(line []byte, id string) (apiv1.Outcome, error) {
	var out apiv1.Outcome
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		return out, fmt.Errorf("reply %s is not an outcome: %v", clip(line), err)
	}
	switch {
	case out.ID != id:
		return out, fmt.Errorf("reply %s is for task %q, not %q", clip(line), out.ID, id)
	case out.DelaySeconds < 0:
		return out, fmt.Errorf("reply %s has a negative delay_seconds", clip(line))
	}
	switch out.Status {
	case apiv1.OutcomeOK, apiv1.OutcomeRetry, apiv1.OutcomeFail, apiv1.OutcomeDead:
		return out, nil
	case "":
		if out.Progress != nil {
			return out, nil
		}
	}
	return out, fmt.Errorf("reply %s: status %q is not ok, retry, fail or dead", clip(line), out.Status)
}

// outcomeError is the handler error an outcome stands for.
func outcomeError(out apiv1.Outcome) error {
	msg := out.Error
	if msg == "" {
		msg = "handler answered " + out.Status
	}
	switch out.Status {
	case apiv1.OutcomeOK:
		return nil
	case apiv1.OutcomeDead:
		return brisk.SkipRetry(errors.New(msg))
	case apiv1.OutcomeRetry:
		if out.DelaySeconds > 0 {
			return brisk.RetryAfter(time.Duration(out.DelaySeconds*float64(time.Second)), errors.New(msg))
		}
	}
	return errors.New(msg)
}

// clip quotes at most 200 bytes of a line for an error message.
func clip(b []byte) string {
	if len(b) > 200 {
		return strconv.Quote(string(b[:200])) + "…"
	}
	return strconv.Quote(string(b))
}

// Close ends every child: their standard input closes (a child should exit at its end),
// and those still running after StopWait are killed. The worker has stopped, so no child
// runs a task.
func (p *execPool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	type proc struct {
		cmd    *exec.Cmd
		stdin  io.Closer
		exited chan struct{}
	}
	var procs []proc
	for _, c := range p.children {
		procs = append(procs, proc{c.cmd, c.stdin, c.exited})
	}
	p.mu.Unlock()
	for _, pr := range procs {
		_ = pr.stdin.Close()
	}
	deadline := time.After(p.cfg.StopWait)
	for _, pr := range procs {
		select {
		case <-pr.exited:
		case <-deadline:
			killChild(pr.cmd)
			<-pr.exited
		}
	}
}
