package autoscale

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"time"
)

// ProcessConfig configures a ProcessActuator.
type ProcessConfig struct {
	// Command is the worker's command line: the program and its arguments (split as a POSIX shell would
	// to get it from one string). No shell runs it. Required.
	Command []string
	// Env is added to the autoscaler's environment for each process.
	Env []string
	// Dir is the processes' working directory (default: the autoscaler's).
	Dir string
	// Grace is how long a process has to exit after SIGTERM before it gets SIGKILL. Set it
	// above the worker's ShutdownTimeout so that its own graceful stop runs to the end.
	// Default 30 s.
	Grace time.Duration
	// Backoff is the first delay before a process that exited by itself is started again;
	// it doubles with each exit in a row, up to MaxBackoff (default 1 s and 30 s). A
	// process that ran for MaxBackoff or longer counts as healthy again.
	Backoff, MaxBackoff time.Duration
	// Stdout and Stderr receive the processes' output (default: the autoscaler's).
	Stdout, Stderr io.Writer
	// Logger receives starts, stops and unexpected exits. Default: discard.
	Logger *slog.Logger
}

// ProcessActuator runs worker processes on this machine and keeps as many of them as the
// last decision asked for. It stops the newest first, with SIGTERM (a brisk worker then
// stops reserving, lets its running tasks finish and hands the others back), and sends
// SIGKILL after Grace. A process that exits when it was not asked to is started again with
// backoff. Stops run in the background; Close stops every process and waits for them.
type ProcessActuator struct {
	cfg ProcessConfig

	mu       sync.Mutex
	procs    []*proc // running or restarting, oldest first
	draining []*proc // asked to stop, perhaps not gone yet
	stopping sync.WaitGroup
	restarts int
	closed   bool
}

type proc struct {
	stop chan struct{} // closed to ask the supervisor to stop the process
	done chan struct{} // closed when the supervisor has ended (the process is gone)
	pid  int           // guarded by ProcessActuator.mu
}

// NewProcessActuator checks cfg and returns an actuator with no process running. A command
// that cannot be found is an error here already.
func NewProcessActuator(cfg ProcessConfig) (*ProcessActuator, error) {
	if len(cfg.Command) == 0 || cfg.Command[0] == "" {
		return nil, invalidf("process actuator: no command")
	}
	if cfg.Grace < 0 || cfg.Backoff < 0 || cfg.MaxBackoff < 0 {
		return nil, invalidf("process actuator: negative grace or backoff")
	}
	if cfg.Grace == 0 {
		cfg.Grace = 30 * time.Second
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = time.Second
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.Backoff)
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if _, err := exec.LookPath(cfg.Command[0]); err != nil {
		return nil, fmt.Errorf("autoscale: worker command %q cannot start: %w", cfg.Command[0], err)
	}
	cfg.Command = append([]string(nil), cfg.Command...)
	return &ProcessActuator{cfg: cfg}, nil
}

// Apply implements Actuator: it scales to d.Desired.
func (p *ProcessActuator) Apply(ctx context.Context, d Decision) error {
	return p.Scale(ctx, d.Desired)
}

// Count returns how many processes the actuator keeps (running or waiting to restart);
// processes that were asked to stop are not counted.
func (p *ProcessActuator) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.procs)
}

// PIDs returns the process IDs of the kept processes, oldest first (0 for one that waits
// to restart).
func (p *ProcessActuator) PIDs() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	pids := make([]int, len(p.procs))
	for i, pr := range p.procs {
		pids[i] = pr.pid
	}
	return pids
}

// Restarts returns how many times a process that exited by itself was started again.
func (p *ProcessActuator) Restarts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restarts
}

// Scale starts or stops processes until n are kept. Starting is synchronous: a process
// that fails to start is an error (the ones started before it are kept). Stopping is not:
// the processes are signalled and Scale returns at once.
func (p *ProcessActuator) Scale(ctx context.Context, n int) error {
	if n < 0 {
		return invalidf("process actuator: count %d is negative", n)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("autoscale: process actuator is closed")
	}
	for len(p.procs) > n {
		pr := p.procs[len(p.procs)-1]
		p.procs = p.procs[:len(p.procs)-1]
		p.cfg.Logger.Info("autoscale: stopping worker process", "pid", pr.pid)
		close(pr.stop)
		p.draining = append(p.draining, pr)
	}
	for len(p.procs) < n {
		if err := ctx.Err(); err != nil {
			return err
		}
		cmd, err := p.start()
		if err != nil {
			return err
		}
		pr := &proc{stop: make(chan struct{}), done: make(chan struct{}), pid: cmd.Process.Pid}
		p.procs = append(p.procs, pr)
		p.stopping.Add(1)
		go p.supervise(pr, cmd)
	}
	return nil
}

// start starts one process.
func (p *ProcessActuator) start() (*exec.Cmd, error) {
	cmd := exec.Command(p.cfg.Command[0], p.cfg.Command[1:]...)
	cmd.Env = append(os.Environ(), p.cfg.Env...)
	cmd.Dir = p.cfg.Dir
	cmd.Stdout, cmd.Stderr = p.cfg.Stdout, p.cfg.Stderr
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("autoscale: worker command %q cannot start: %w", p.cfg.Command[0], err)
	}
	p.cfg.Logger.Info("autoscale: started worker process", "pid", cmd.Process.Pid)
	return cmd, nil
}

// supervise waits for pr's process; it stops it when asked and starts it again when it
// exits by itself.
func (p *ProcessActuator) supervise(pr *proc, cmd *exec.Cmd) {
	defer p.stopping.Done()
	defer close(pr.done)
	failures := 0
	for {
		started := time.Now()
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case <-pr.stop:
			p.terminate(cmd, exited)
			return
		case err := <-exited:
			if time.Since(started) >= p.cfg.MaxBackoff {
				failures = 0
			}
			failures++
			delay := min(p.cfg.MaxBackoff, p.cfg.Backoff<<min(failures-1, 20))
			p.cfg.Logger.Warn("autoscale: worker process exited unexpectedly; restarting",
				"pid", cmd.Process.Pid, "err", exitText(err), "in", delay)
			p.mu.Lock()
			pr.pid = 0
			p.mu.Unlock()
			for {
				select {
				case <-pr.stop:
					return
				case <-time.After(delay):
				}
				next, err := p.start()
				if err == nil {
					cmd = next
					p.mu.Lock()
					pr.pid = cmd.Process.Pid
					p.restarts++
					p.mu.Unlock()
					break
				}
				failures++
				delay = min(p.cfg.MaxBackoff, p.cfg.Backoff<<min(failures-1, 20))
				p.cfg.Logger.Error("autoscale: restart failed", "err", err, "retry_in", delay)
			}
		}
	}
}

// terminate sends SIGTERM, waits up to Grace, then kills.
func (p *ProcessActuator) terminate(cmd *exec.Cmd, exited <-chan error) {
	pid := cmd.Process.Pid
	if err := terminateProcess(cmd); err != nil {
		p.cfg.Logger.Warn("autoscale: SIGTERM failed", "pid", pid, "err", err)
	}
	select {
	case err := <-exited:
		p.cfg.Logger.Info("autoscale: worker process stopped", "pid", pid, "exit", exitText(err))
	case <-time.After(p.cfg.Grace):
		p.cfg.Logger.Warn("autoscale: worker process did not stop within the grace period; killing it", "pid", pid, "grace", p.cfg.Grace)
		_ = cmd.Process.Kill()
		<-exited
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Wait waits until every process that was asked to stop has exited (or ctx is done).
func (p *ProcessActuator) Wait(ctx context.Context) error {
	p.mu.Lock()
	draining := p.draining
	p.draining = nil
	p.mu.Unlock()
	for _, pr := range draining {
		select {
		case <-pr.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Close stops every process gracefully (SIGTERM, then SIGKILL after Grace) and waits for
// them. Later calls of Scale fail.
func (p *ProcessActuator) Close() error {
	p.mu.Lock()
	p.closed = true
	for i := len(p.procs) - 1; i >= 0; i-- {
		close(p.procs[i].stop)
	}
	p.procs = nil
	p.mu.Unlock()
	p.stopping.Wait()
	return nil
}
