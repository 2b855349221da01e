package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/briskq/brisk/autoscale"
	"github.com/briskq/brisk/internal/testenv"
)

func TestAutoscaleUsageErrors(t *testing.T) {
	t.Parallel()
	url := setup(t)
	base := []string{"autoscale", "--broker", url, "--queue", "q"}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--hook", "echo {{count}}", "--min", "5", "--max", "2"}, 2, "--min 5 is above --max 2"},
		{[]string{"--hook", "echo {{count}}", "--interval", "0s"}, 2, "--interval 0s is not positive"},
		{[]string{"--hook", "echo {{count}}", "--interval", "-1s"}, 2, "--interval -1s is not positive"},
		{[]string{"--hook", "echo {{count}}", "--policy", "magic"}, 2, `unknown policy "magic"`},
		{[]string{"--hook", "echo {{count}}", "--param", "upper"}, 2, `--param "upper" is not key=number`},
		{[]string{"--hook", "echo {{count}}", "--policy", "threshold", "--param", "nope=1"}, 2, `has no parameter "nope"`},
		{nil, 2, "give one of --exec CMD or --hook CMD"},
		{[]string{"--hook", "echo {{count}}", "--exec", "sleep 60"}, 2, "give one of --exec CMD or --hook CMD"},
		{[]string{"--hook", "echo 3"}, 2, "does not contain {{count}}"},
		{[]string{"--hook", "echo {{count}}", "--policy", "cpu"}, 2, "--policy cpu needs --exec"},
		{[]string{"--exec", "sleep 'x"}, 2, "unterminated single quote"},
		{[]string{"--exec", "/nonexistent/brisk-worker --queue q"}, 1, `worker command "/nonexistent/brisk-worker" cannot start`},
		{[]string{"--exec", "sleep 60", "extra"}, 2, `unexpected argument "extra"`},
	} {
		msg := fails(t, c.code, append(append([]string(nil), base...), c.args...)...)
		if !strings.Contains(msg, c.want) {
			t.Errorf("%v: %q lacks %q", c.args, msg, c.want)
		}
	}
	if msg := fails(t, 2, "autoscale", "--hook", "x {{count}}"); !strings.Contains(msg, "give at least one --queue") {
		t.Errorf("no queue: %q", msg)
	}
	if out := ok(t, "autoscale", "--help"); !strings.Contains(out, "--exec CMD") || !strings.Contains(out, "--metrics ADDR") {
		t.Errorf("help:\n%s", out)
	}
}

// runBackground runs the command until the returned stop function is called; stop returns
// the exit status.
func runBackground(t *testing.T, args ...string) (stdout, stderr *testenv.Buffer, stop func() int) {
	t.Helper()
	stdout, stderr = &testenv.Buffer{}, &testenv.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	go func() { code <- run(ctx, args, strings.NewReader(""), stdout, stderr) }()
	return stdout, stderr, func() int { cancel(); return <-code }
}

func waitOutput(t *testing.T, what string, buf *testenv.Buffer, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := re.FindStringSubmatch(buf.String()); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; output:\n%s", what, buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAutoscaleHookAndMetrics(t *testing.T) {
	t.Parallel()
	url := setup(t)
	if err := open(t, url).DeclareQueue(context.Background(), "emails", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	ok(t, "enqueue", "--broker", url, "--queue", "emails", "send", `{}`)
	counts := filepath.Join(t.TempDir(), "counts")
	stdout, stderr, stop := runBackground(t, "autoscale", "--broker", url, "--queue", "emails",
		"--policy", "fixed", "--param", "n=3", "--min", "1", "--max", "4", "--interval", "50ms",
		"--hook", "sh -c 'echo {{count}} >> "+counts+"'", "--metrics", "127.0.0.1:0")
	addr := waitOutput(t, "the metrics address", stdout, regexp.MustCompile(`metrics on (http://\S+/metrics)`))[1]
	waitOutput(t, "a decision", stdout, regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d emails latency \S+ \(SLA 5s\) pending 1 in \S+/s out \S+/s workers 1 -> 3: fixed`))
	waitOutput(t, "a second decision", stdout, regexp.MustCompile(`workers 3 -> 3`))
	resp, err := http.Get(addr)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`brisk_queue_pending{queue="emails"} 1`, `brisk_queue_sla_seconds{queue="emails"} 5`,
		`brisk_autoscale_desired_workers{queue="emails"} 3`, `brisk_autoscale_current_workers 3`,
		`brisk_autoscale_decisions_total{direction="up",queue="emails"} 1`, `brisk_queue_latency_seconds{queue="emails"}`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	resp, err = http.Get(strings.TrimSuffix(addr, "/metrics") + "/decisions")
	if err != nil {
		t.Fatal(err)
	}
	var decisions []autoscale.DecisionRecord
	err = json.NewDecoder(resp.Body).Decode(&decisions)
	resp.Body.Close()
	if err != nil || len(decisions) < 2 || decisions[0].Queue != "emails" || decisions[0].Current != 1 ||
		decisions[0].Desired != 3 || !strings.HasPrefix(decisions[0].Reason, "fixed") || decisions[0].Time.IsZero() {
		t.Errorf("/decisions: %+v, %v", decisions, err)
	}
	if code := stop(); code != exitInterrupted {
		t.Errorf("exit %d after the interrupt, want %d; stderr %q", code, exitInterrupted, stderr.String())
	}
	if b, _ := os.ReadFile(counts); string(b) != "3\n" {
		t.Errorf("the hook wrote %q, want it to run once with 3", b)
	}
}

func TestAutoscaleExec(t *testing.T) {
	t.Parallel()
	url := setup(t)
	ok(t, "enqueue", "--broker", url, "--queue", "q", "x", `{}`)
	stdout, stderr, stop := runBackground(t, "autoscale", "--broker", url, "--queue", "q",
		"--policy", "fixed", "--param", "n=2", "--max", "3", "--interval", "50ms", "--grace", "5s",
		"--exec", "sleep 60", "--json-log")
	waitOutput(t, "a decision", stdout, regexp.MustCompile(`"msg":"autoscale: decision".*"current":1,"desired":2`))
	waitOutput(t, "two processes", stdout, regexp.MustCompile(`(?s)started worker process.*started worker process`))
	if code := stop(); code != exitInterrupted {
		t.Errorf("exit %d, want %d; stderr %q", code, exitInterrupted, stderr.String())
	}
	out := stdout.String()
	if !strings.Contains(out, "stopping 2 worker process(es)") || strings.Count(out, `"msg":"autoscale: worker process stopped"`) != 2 {
		t.Errorf("the workers were not stopped:\n%s", out)
	}
}

// TestAutoscaleCPU runs the cpu policy on worker processes that keep a core busy: the CPU
// measured from /proc is far above the 5% target, so the controller scales out.
func TestAutoscaleCPU(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the CPU of worker processes is read from /proc")
	}
	t.Parallel()
	url := setup(t)
	ok(t, "enqueue", "--broker", url, "--queue", "q", "x", `{}`)
	stdout, stderr, stop := runBackground(t, "autoscale", "--broker", url, "--queue", "q",
		"--policy", "cpu", "--param", "target=0.05", "--param", "stabilise=60", "--max", "3", "--interval", "300ms",
		"--grace", "5s", "--exec", "sh -c 'while :; do :; done'")
	waitOutput(t, "a decision that measured the CPU", stdout, regexp.MustCompile(`workers 1 -> [23]: cpu [1-9][0-9]*% target 5%`))
	if code := stop(); code != exitInterrupted {
		t.Errorf("exit %d, want %d; stderr %q", code, exitInterrupted, stderr.String())
	}
}

// TestAutoscaleState: --state keeps the sla policy's memory and the count the hook applied,
// a restart reads them back and says so, state of another policy is not used, and a file
// that is not a state file is refused and left as it was.
func TestAutoscaleState(t *testing.T) {
	t.Parallel()
	url := setup(t)
	for range 3 {
		ok(t, "enqueue", "--broker", url, "--queue", "emails", "send", `{}`)
	}
	dir := t.TempDir()
	state := filepath.Join(dir, "autoscale.json")
	counts := filepath.Join(dir, "counts")
	args := []string{"autoscale", "--broker", url, "--queue", "emails", "--min", "2", "--max", "4",
		"--interval", "50ms", "--hook", "sh -c 'echo {{count}} >> " + counts + "'", "--state", state}

	stdout, stderr, stop := runBackground(t, args...)
	waitOutput(t, "two decisions", stdout, regexp.MustCompile(`(?s)workers \d -> \d.*workers \d -> \d`))
	if code := stop(); code != exitInterrupted {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if strings.Contains(stdout.String(), "state from") {
		t.Errorf("first run reports a state it cannot have read:\n%s", stdout.String())
	}
	var st autoscaleState
	b, err := os.ReadFile(state)
	if err != nil || json.Unmarshal(b, &st) != nil || st.Policy != "sla" || st.Workers < 2 || len(st.Queues["emails"]) == 0 || st.SavedAt.IsZero() {
		t.Fatalf("state file after the first run: %s (%v)", b, err)
	}

	stdout, stderr, stop = runBackground(t, args...)
	waitOutput(t, "the restored state", stdout, regexp.MustCompile(
		`state from \S+autoscale.json, saved \S+ ago: the policy's memory of 1 queue\(s\) restored; the platform is assumed to run `+strconv.Itoa(st.Workers)+` worker\(s\)`))
	waitOutput(t, "a decision", stdout, regexp.MustCompile(`workers `+strconv.Itoa(st.Workers)+` -> \d`))
	if code := stop(); code != exitInterrupted {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}

	other := append(append([]string(nil), args...), "--policy", "fixed", "--param", "n=3")
	stdout, _, stop = runBackground(t, other...)
	waitOutput(t, "the other policy's state", stdout, regexp.MustCompile(`state from \S+ was saved by policy sla: its memory is not used`))
	stop()

	bad := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(bad, []byte("my notes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badArgs := append(append([]string(nil), args[:len(args)-1]...), bad)
	if msg := fails(t, 1, badArgs...); !strings.Contains(msg, "is not a brisk autoscale state file") {
		t.Errorf("--state of a file that is not one: %q", msg)
	}
	if b, _ := os.ReadFile(bad); string(b) != "my notes\n" {
		t.Errorf("the refused file was changed: %q", b)
	}
}
