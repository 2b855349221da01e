package cli

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/briskq/brisk/internal/testenv"
)

func TestDashboardRefusesOpenListenWithoutAuth(t *testing.T) {
	t.Parallel()
	url := setup(t)
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:7070", "example.com:80"} {
		msg := fails(t, exitError, "dashboard", "--broker", url, "--listen", addr)
		if !strings.Contains(msg, "without authentication") || !strings.Contains(msg, "--token") {
			t.Errorf("--listen %s: %q", addr, msg)
		}
	}
	fails(t, exitUsage, "dashboard", "--broker", url, "--basic-auth", "nopassword")
	fails(t, exitUsage, "dashboard", "--broker", url, "--listen", "7070")
	if msg := fails(t, exitUsage, "dashboard", "--broker", url, "--autoscaler", "localhost:9090"); !strings.Contains(msg, "--autoscaler") {
		t.Errorf("--autoscaler without a scheme: %q", msg)
	}
	for _, h := range []string{"127.0.0.1", "localhost", "::1", "127.0.0.2"} {
		if !isLoopback(h) {
			t.Errorf("isLoopback(%q) = false", h)
		}
	}
}

func TestDashboardServes(t *testing.T) {
	t.Parallel()
	url := setup(t)
	ok(t, "enqueue", "--broker", url, "--queue", "five_second", "a", `{}`)
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut testenv.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"dashboard", "--broker", url, "--listen", "127.0.0.1:0", "--token", "tok"},
			strings.NewReader(""), &out, &errOut)
	}()
	var base string
	for deadline := time.Now().Add(10 * time.Second); base == ""; {
		if s := out.String(); strings.Contains(s, "http://") {
			base = strings.Fields(s[strings.Index(s, "http://"):])[0]
		} else if time.Now().After(deadline) {
			t.Fatalf("no address printed; stderr %q", errOut.String())
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	get := func(auth string) (int, string) {
		req, _ := http.NewRequest("GET", base+"api/v1/queues", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get(""); code != 401 {
		t.Errorf("without token: %d", code)
	}
	code, body := get("Bearer tok")
	if code != 200 || !strings.Contains(body, `"name":"five_second"`) {
		t.Errorf("with token: %d %s", code, body)
	}
	cancel()
	if c := <-done; c != exitInterrupted {
		t.Errorf("exit %d after cancel, stderr %q", c, errOut.String())
	}
	http.DefaultClient.CloseIdleConnections()
}
