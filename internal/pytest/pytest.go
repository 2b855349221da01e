// Package pytest gives Go tests what they need to drive the real Python libraries brisk
// watches and competes with (Celery, RQ): an interpreter that imports them, and a Redis
// database of their own (their keys take no prefix).
package pytest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/dashboard"
	"github.com/briskq/brisk/internal/redistest"
	"github.com/briskq/brisk/internal/testenv"
)

// Python returns an interpreter that imports every module given: Debian's /usr/bin/python3
// first (python3-celery and python3-rq install for it), then python3 on $PATH. Without one
// the test fails under CI and is skipped out loud elsewhere.
func Python(t testing.TB, modules ...string) string {
	t.Helper()
	imports := "import " + strings.Join(modules, ", ")
	candidates := []string{"/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	for _, py := range candidates {
		if err := exec.Command(py, "-c", imports).Run(); err == nil {
			return py
		}
	}
	testenv.Missing(t, "no python3 imports %s (apt-get install python3-celery python3-rq)", strings.Join(modules, ", "))
	return ""
}

// RedisDB returns the URL of database db of the tests' Redis ($BRISK_REDIS_URL), emptied
// before the test and after it. Each package that uses one takes its own number, so that
// packages tested in parallel do not meet: 9 rqbroker, 10 celerybroker, 7 and 8 the live
// autoscaling tests of internal/cli (peerbench takes 11 to 14).
func RedisDB(t testing.TB, db int) string {
	t.Helper()
	raw := redistest.URL(t)
	opts, err := redis.ParseURL(raw)
	if err != nil {
		t.Fatal(err)
	}
	opts.DB = db
	c := redis.NewClient(opts)
	flush := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.FlushDB(ctx).Err(); err != nil {
			t.Errorf("empty redis database %d: %v", db, err)
		}
	}
	flush()
	t.Cleanup(func() { flush(); c.Close() })
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = fmt.Sprintf("/%d", db)
	return u.String()
}

// Run runs a Python script with args in dir and returns its standard output; the test
// fails with the standard error when it fails.
func Run(t testing.TB, py, dir, script string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(py, append([]string{"-c", script}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	return string(out)
}

// LastLine returns the last non-empty line of out (where a script prints its result after
// whatever the libraries it drives print).
func LastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

// CheckDashboard serves the dashboard of b (read-only, as brisk dashboard serves a
// watcher) and checks that its pages, API and /metrics show queue.
func CheckDashboard(t testing.TB, b brisk.Broker, queue string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h, err := dashboard.New(b, dashboard.Options{ReadOnly: true, Context: ctx, SampleInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer srv.Client().CloseIdleConnections()
	for path, want := range map[string]string{
		"/":                                queue,
		"/queues/" + queue:                 queue,
		"/api/v1/queues":                   `"name":"` + queue + `"`,
		"/metrics":                         `brisk_queue_latency_seconds{queue="` + queue + `"}`,
		"/workers":                         "",
		"/queues/" + queue + "?state=dead": queue,
	} {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("dashboard GET %s: %d, want 200 with %q in:\n%.600s", path, resp.StatusCode, want, body)
		}
	}
}
