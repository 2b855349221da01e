package brokertest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/briskq/brisk/broker"
)

// The environment of a child process that the suite starts by re-executing the test binary.
const (
	// envRole names the role the child plays; Run does only that when it is set.
	envRole = "BRISKTEST_ROLE"
	// envURL is the URL of the store the child opens.
	envURL = "BRISKTEST_URL"
	// envQueue is the queue the child works on.
	envQueue = "BRISKTEST_QUEUE"
	// envGoroutines is how many goroutines a consumer child runs.
	envGoroutines = "BRISKTEST_GOROUTINES"
)

// Lines a child writes to its standard output for the parent.
const (
	// lineReady says the child has opened its broker and waits for a line on standard input.
	lineReady = "brisktest-ready"
	// lineGot records one delivery: "brisktest-got <task id> <pid> <worker id>".
	lineGot = "brisktest-got"
)

// roles maps the value of BRISKTEST_ROLE to what the child process does, given the harness
// and the URL of the store (BRISKTEST_URL). A file of this package that needs another kind of
// child adds its role here from an init function and starts the child with childCommand.
var roles = map[string]func(t *testing.T, h Harness, url string){
	"consumer": runConsumer,
	"enqueuer": runEnqueuer,
}

// runRole plays the role a parent process gave this process.
func runRole(t *testing.T, h Harness, role string) {
	run, ok := roles[role]
	if !ok {
		t.Fatalf("brokertest: unknown %s=%q (known roles: %v)", envRole, role, slices.Sorted(maps.Keys(roles)))
	}
	run(t, h, os.Getenv(envURL))
}

// consumerIdleExit is how long a consumer child goes on after the queue was last found with a
// task in it.
const consumerIdleExit = time.Second

// testMultiProcess checks that consumers in several processes never receive the same task
// while its lease holds, and together receive every task.
func (s *suite) testMultiProcess(t *testing.T) {
	s.test(t, "NoTaskTwiceAcrossProcesses", func(e *env) {
		if testing.Short() {
			e.t.Skip("SKIPPED in -short mode: this test starts 3 consumer processes")
		}
		const (
			n     = 1000
			procs = 3
			queue = "mp"
		)
		tasks := NewTasks(queue, "t", n)
		for i := 0; i < n; i += 100 {
			e.enqueue(tasks[i : i+100]...)
		}
		ctx, cancel := context.WithTimeout(e.ctx, childTimeout(e.t))
		defer cancel()
		children := make([]*child, procs)
		for i := range children {
			children[i] = s.startChild(e.t, ctx, "consumer", e.url,
				envQueue+"="+queue, envGoroutines+"="+strconv.Itoa(2+i))
		}
		for i, c := range children {
			if err := c.waitReady(ctx); err != nil {
				e.t.Fatalf("consumer process %d did not start: %v%s", i, err, c.output())
			}
		}
		start := time.Now()
		for _, c := range children {
			c.start()
		}
		seen := map[string]int{}
		var (
			perProc    []string
			deliveries int
		)
		for i, c := range children {
			if err := c.finish(); err != nil {
				e.t.Errorf("consumer process %d: %v%s", i, err, c.output())
			}
			for _, line := range c.got {
				f := strings.Fields(line)
				if len(f) < 3 {
					e.t.Errorf("consumer process %d wrote a bad line %q", i, line)
					continue
				}
				seen[f[1]]++
			}
			deliveries += len(c.got)
			perProc = append(perProc, fmt.Sprintf("pid %d: %d", c.cmd.Process.Pid, len(c.got)))
		}
		e.t.Logf("%d consumer processes took %d deliveries of %d tasks in %s (including %s idle before exit): %s",
			procs, deliveries, n, time.Since(start).Round(time.Millisecond), consumerIdleExit, strings.Join(perProc, ", "))
		e.wantExactlyOnce(ids(tasks), seen)
		e.wantCounts(queue, counts{})
	})
}

// runConsumer is the consumer role: it opens the broker at BRISKTEST_URL, writes lineReady,
// waits for a line on standard input, then runs BRISKTEST_GOROUTINES goroutines that reserve
// from BRISKTEST_QUEUE with a long lease, write a lineGot for every task before they ack it,
// and stop when the queue has been empty for consumerIdleExit.
func runConsumer(t *testing.T, h Harness, url string) {
	queue := os.Getenv(envQueue)
	goroutines, _ := strconv.Atoi(os.Getenv(envGoroutines))
	goroutines = max(goroutines, 1)
	ctx := t.Context()
	b, err := h.Open(ctx, url)
	if err != nil {
		t.Fatalf("consumer: Open(%q): %v", url, err)
	}
	defer func() {
		if err := b.Close(); err != nil {
			t.Errorf("consumer: Close: %v", err)
		}
	}()
	fmt.Println(lineReady)
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // the parent's go, or EOF if it is gone

	pid := os.Getpid()
	var (
		mu       sync.Mutex // one writer of os.Stdout at a time
		lastSeen atomic.Int64
		wg       sync.WaitGroup
	)
	lastSeen.Store(time.Now().UnixNano())
	for g := range goroutines {
		worker := fmt.Sprintf("p%d-g%d", pid, g)
		wg.Go(func() {
			for {
				got, err := b.Reserve(ctx, broker.ReserveParams{Queues: queues(queue), Limit: 1 + g%3, Lease: longLease, WorkerID: worker})
				if err != nil {
					t.Errorf("consumer %s: Reserve: %v", worker, err)
					return
				}
				if len(got) == 0 {
					if time.Since(time.Unix(0, lastSeen.Load())) > consumerIdleExit {
						return
					}
					if err := b.Wait(ctx, []string{queue}, 100*time.Millisecond); err != nil {
						t.Errorf("consumer %s: Wait: %v", worker, err)
						return
					}
					continue
				}
				lastSeen.Store(time.Now().UnixNano())
				var buf bytes.Buffer
				for _, task := range got {
					fmt.Fprintf(&buf, "%s %s %d %s\n", lineGot, task.ID, pid, worker)
				}
				mu.Lock()
				_, err = os.Stdout.Write(buf.Bytes())
				mu.Unlock()
				if err != nil {
					t.Errorf("consumer %s: write: %v", worker, err)
					return
				}
				if err := b.Ack(ctx, leases(got)); errors.Is(err, broker.ErrLeaseLost) {
					// Another consumer holds one of these tasks: the parent counts the
					// duplicate; keep draining so that its count is complete.
					t.Errorf("consumer %s: Ack under a lease taken not 30 s before: %v", worker, err)
				} else if err != nil {
					t.Errorf("consumer %s: Ack: %v", worker, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// runEnqueuer is the enqueuer role: it opens the broker at BRISKTEST_URL, writes lineReady,
// waits for a line on standard input, enqueues one task to BRISKTEST_QUEUE and exits.
func runEnqueuer(t *testing.T, h Harness, url string) {
	ctx := t.Context()
	b, err := h.Open(ctx, url)
	if err != nil {
		t.Fatalf("enqueuer: Open(%q): %v", url, err)
	}
	defer func() {
		if err := b.Close(); err != nil {
			t.Errorf("enqueuer: Close: %v", err)
		}
	}()
	fmt.Println(lineReady)
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		t.Fatalf("enqueuer: no go from the parent: %v", err)
	}
	if err := b.Enqueue(ctx, []*broker.Task{NewTask(os.Getenv(envQueue), "t", nil)}); err != nil {
		t.Fatalf("enqueuer: Enqueue: %v", err)
	}
}

// childTimeout bounds the child processes of one test: two minutes, or less when the test
// binary's deadline comes sooner.
func childTimeout(t *testing.T) time.Duration {
	d := 2 * time.Minute
	if deadline, ok := t.Deadline(); ok {
		d = min(d, time.Until(deadline)-5*time.Second)
	}
	return max(d, 10*time.Second)
}

// child is a process running one role of the suite.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	ready  chan struct{} // closed when the child wrote lineReady
	read   chan struct{} // closed when its standard output is read to the end
	once   sync.Once
	err    error
	gotMu  sync.Mutex   // guards got while the output is read
	got    []string     // its lineGot lines
	other  bytes.Buffer // the rest of its standard output
	stderr bytes.Buffer
}

// childCommand returns a command, not started, that re-executes the test binary so that it
// runs only the test that called Run, playing role (a key of roles) on the store at url, with
// env ("KEY=value") added to its environment. The process is killed if it still runs when t
// ends; the caller starts it and waits for it.
func (s *suite) childCommand(t *testing.T, role, url string, env ...string) *exec.Cmd {
	t.Helper()
	return s.childCommandContext(t.Context(), role, url, env...)
}

// childCommandContext is childCommand with a context that kills the process when it ends.
func (s *suite) childCommandContext(ctx context.Context, role, url string, env ...string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	cmd := exec.CommandContext(ctx, exe, s.childArgs()...)
	cmd.Env = append(os.Environ(), envRole+"="+role, envURL+"="+url)
	cmd.Env = append(cmd.Env, env...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// startChild starts a child process (see childCommand) whose standard output is read line by
// line: lineReady, lineGot lines, and the rest kept for failure messages. The child is killed
// when ctx ends and waited for when t ends.
func (s *suite) startChild(t *testing.T, ctx context.Context, role, url string, env ...string) *child {
	t.Helper()
	c := &child{ready: make(chan struct{}), read: make(chan struct{})}
	c.cmd = s.childCommandContext(ctx, role, url, env...)
	c.cmd.Stderr = &c.stderr
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatalf("stdin pipe: %v", err)
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("stdout pipe: %v", err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start %s %q: %v", c.cmd.Path, c.cmd.Args[1:], err)
	}
	go c.readOutput(stdout)
	t.Cleanup(func() {
		if err := c.finish(); err != nil && t.Failed() {
			t.Logf("child process: %v%s", err, c.output())
		}
	})
	return c
}

// childArgs selects exactly the test that called Run (each level of its name anchored) and
// nothing else: no inherited -test.run, -test.count, -test.bench or coverage flags; only the
// timeout is passed on.
func (s *suite) childArgs() []string {
	parts := strings.Split(s.runPath, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	args := []string{"-test.run=" + strings.Join(parts, "/"), "-test.v=false", "-test.count=1"}
	if f := flag.Lookup("test.timeout"); f != nil {
		args = append(args, "-test.timeout="+f.Value.String())
	}
	return args
}

func (c *child) readOutput(stdout io.Reader) {
	defer close(c.read)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	readySeen := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == lineReady && !readySeen:
			readySeen = true
			close(c.ready)
		case strings.HasPrefix(line, lineGot+" "):
			c.gotMu.Lock()
			c.got = append(c.got, line)
			c.gotMu.Unlock()
		default:
			c.other.WriteString(line + "\n")
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
}

// waitReady waits until the child has written lineReady.
func (c *child) waitReady(ctx context.Context) error {
	select {
	case <-c.ready:
		return nil
	case <-c.read:
		return errors.New("it exited before it was ready")
	case <-ctx.Done():
		return fmt.Errorf("not ready before its deadline: %w", ctx.Err())
	}
}

// start tells a ready child to begin.
func (c *child) start() {
	_, _ = io.WriteString(c.stdin, "go\n")
	_ = c.stdin.Close()
}

// finish waits for the child to exit (it is killed if its context ends first) and returns
// how it ended. It may be called more than once.
func (c *child) finish() error {
	c.once.Do(func() {
		_ = c.stdin.Close()
		<-c.read
		c.err = c.cmd.Wait()
	})
	return c.err
}

// output formats what the child wrote besides its deliveries, for failure messages.
func (c *child) output() string {
	<-c.read
	var b strings.Builder
	if s := strings.TrimSpace(c.other.String()); s != "" {
		fmt.Fprintf(&b, "\n--- child stdout:\n%s", s)
	}
	if s := strings.TrimSpace(c.stderr.String()); s != "" {
		fmt.Fprintf(&b, "\n--- child stderr:\n%s", s)
	}
	return b.String()
}

// readGo waits for the parent's go line on standard input (EOF if the parent is gone).
func readGo() (string, error) {
	return bufio.NewReader(os.Stdin).ReadString('\n')
}
