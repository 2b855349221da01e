package dashboard_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/brisktype"
	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/dashboard"
	"github.com/briskq/brisk/internal/testenv"
)

const chromiumPath = "/usr/bin/chromium"

// browser starts headless Chromium for one test. Without Chromium the test fails under CI
// (scripts/test.sh installs Debian's chromium) and is skipped, loudly, elsewhere.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		msg := fmt.Sprintf("browser test needs Chromium at %s (apt-get install chromium): %v", chromiumPath, err)
		testenv.Missing(t, "%s", msg)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	return ctx
}

// fill puts a few queues into e: one_second over its SLA (7 s), one_minute near it
// (52 s), five_minute well within (12 s), and reports without SLA holding dead tasks.
func fill(t *testing.T, e *env) (readyAt map[string]time.Time, dead []string) {
	t.Helper()
	ctx := context.Background()
	dead = makeDead(t, e, "reports", 2)
	now := time.Now()
	readyAt = map[string]time.Time{
		"one_second":  now.Add(-7 * time.Second),
		"one_minute":  now.Add(-52 * time.Second),
		"five_minute": now.Add(-12 * time.Second),
	}
	counts := map[string]int{"one_second": 12, "one_minute": 3, "five_minute": 40}
	for q, n := range counts {
		// Tasks that have waited since readyAt: enqueued then (a ProcessAt in the past
		// would mean now), so through the broker.
		var batch []*broker.Task
		for i := range n {
			at := readyAt[q].Add(time.Duration(i) * time.Millisecond)
			batch = append(batch, &broker.Task{TaskInfo: brisktype.TaskInfo{ID: fmt.Sprintf("%s-%d", q, i), Queue: q,
				Type: "email.send", Payload: []byte(fmt.Sprintf(`{"n":%d}`, i)), MaxAttempts: 3, EnqueuedAt: at, ReadyAt: at}})
		}
		if err := e.b.Enqueue(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	e.enqueue(t, "five_minute", `{"type":"report.build","payload":{},"delay_seconds":300}`)
	return readyAt, dead
}

func TestBrowserQueuesPageAndRetry(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
	e := setup(t, dashboard.Options{})
	readyAt, dead := fill(t, e)

	// The queues page: counts and latency as enqueued.
	before := time.Now()
	err := chromedp.Do(ctx, chromedp.Navigate(e.srv.URL+"/"), chromedp.WaitVisible(`tr[data-queue="one_second"]`))
	if err != nil {
		t.Fatal(err)
	}
	latency := attr(t, ctx, `tr[data-queue="one_second"] td.latency`, "data-seconds")
	after := time.Now()
	if pending := text(t, ctx, `tr[data-queue="one_second"] td.pending`); pending != "12" {
		t.Errorf("one_second pending shown %q, want 12", pending)
	}
	lat, err := strconv.ParseFloat(latency, 64)
	lo, hi := before.Sub(readyAt["one_second"]).Seconds(), after.Sub(readyAt["one_second"]).Seconds()
	if err != nil || lat < lo-0.01 || lat > hi+0.01 {
		t.Errorf("one_second latency shown %q, want between %.3f and %.3f", latency, lo, hi)
	}
	if status := text(t, ctx, `tr[data-queue="one_second"] .badge`); !strings.Contains(status, "over SLA") {
		t.Errorf("one_second status %q, want over SLA", status)
	}
	for q, want := range map[string]string{"one_minute": "3", "five_minute": "40", "reports": "0"} {
		if got := text(t, ctx, `tr[data-queue="`+q+`"] td.pending`); got != want {
			t.Errorf("%s pending shown %q, want %s", q, got, want)
		}
		wantCls := map[string]string{"one_minute": "status-warn", "five_minute": "status-ok", "reports": "status-none"}[q]
		if cls := attr(t, ctx, `tr[data-queue="`+q+`"]`, "class"); cls != wantCls {
			t.Errorf("%s row class %q, want %s", q, cls, wantCls)
		}
	}

	// Live update without a reload: a new task shows up within a polling period.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.__marker = 1`)); err != nil {
		t.Fatal(err)
	}
	e.enqueue(t, "one_second", `{"type":"email.send","payload":{}}`)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector('tr[data-queue="one_second"] td.pending').textContent === "13"`,
		chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("the page did not update live: %v", err)
	}
	if marker, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.__marker`)); err != nil || marker != 1 {
		t.Errorf("the page was reloaded instead of updated")
	}
	png := filepath.Join(t.TempDir(), "queues.png")
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(png, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	if out := os.Getenv("BRISK_DASHBOARD_SCREENSHOT"); out != "" { // for docs/dashboard.png
		if err := os.WriteFile(out, shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshot: %s", png)

	// The dead list: click retry on one task and see it leave.
	err = chromedp.Do(ctx,
		chromedp.Click(`tr[data-queue="reports"] td.dead a`),
		chromedp.WaitVisible(`tr[data-task="`+dead[0]+`"]`),
	)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('table.tasks tbody tr').length`))
	if err != nil {
		t.Fatal(err)
	}
	if rows != 2 {
		t.Fatalf("dead list shows %d tasks, want 2", rows)
	}
	if err := chromedp.Do(ctx, chromedp.Click(`tr[data-task="`+dead[0]+`"] button.retry`)); err != nil {
		t.Fatal(err)
	}
	// The form posts and the browser follows the redirect back to the dead list.
	gone := `location.search === "?state=dead" && document.querySelector('tr[data-task="` + dead[0] + `"]') === null && document.querySelectorAll('table.tasks tbody tr').length === 1`
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](gone))
		if err == nil && ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retried task did not leave the dead list (last error %v)", err)
		}
	}
	task, err := brisk.NewInspector(e.b).Task(context.Background(), dead[0])
	if err != nil || task.State != brisk.StatePending {
		t.Fatalf("retried task: %+v, %v", task, err)
	}
	if shot, err = chromedp.Run(ctx, chromedp.FullScreenshot(100)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(png), "dead.png"), shot, 0o644); err != nil {
		t.Fatal(err)
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Text(sel))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(v)
}

func attr(t *testing.T, ctx context.Context, sel, name string) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.AttributeValue(sel, name))
	if err != nil {
		t.Fatalf("attribute %s of %s: %v", name, sel, err)
	}
	return v.Value
}
