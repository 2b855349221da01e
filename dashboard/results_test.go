package dashboard_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/dashboard"
	"github.com/briskq/brisk/internal/apiv1"
)

// TestResultsAndProgress sets a queue's retention through the API, enqueues a task with
// retention_seconds, and checks that the API and the pages show a running task's progress
// and a completed task's result.
func TestResultsAndProgress(t *testing.T) {
	t.Parallel()
	e := setup(t, dashboard.Options{})
	code, body := e.do(t, "PUT", "/api/v1/queues/jobs", "application/json", `{"retention_seconds": 3600}`)
	var q apiv1.Queue
	if err := json.Unmarshal([]byte(body), &q); code != http.StatusOK || err != nil || q.RetentionSeconds != 3600 {
		t.Fatalf("PUT retention: %d %s", code, body)
	}
	code, body = e.do(t, "PUT", "/api/v1/queues/jobs", "application/json", `{"retention_seconds": -1}`)
	wantError(t, code, body, http.StatusBadRequest)

	release := make(chan struct{})
	w, err := brisk.NewWorker(e.b, brisk.WorkerConfig{Queues: []brisk.QueueSpec{{Name: "jobs"}}})
	if err != nil {
		t.Fatal(err)
	}
	w.HandleFunc("report", func(ctx context.Context, _ *brisk.Task) error {
		if err := brisk.ReportProgress(ctx, 40, "rendering <pages>"); err != nil {
			return err
		}
		<-release
		return brisk.SetResultJSON(ctx, map[string]string{"url": "/r/1"})
	})
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	id := e.enqueue(t, "jobs", `{"type":"report","retention_seconds":60}`)

	task := func() apiv1.Task {
		t.Helper()
		code, body := e.do(t, "GET", "/api/v1/tasks/"+id, "", "")
		var got apiv1.Task
		if err := json.Unmarshal([]byte(body), &got); code != http.StatusOK || err != nil {
			t.Fatalf("GET task: %d %s", code, body)
		}
		return got
	}
	deadline := time.Now().Add(10 * time.Second)
	for got := task(); got.Progress == nil; got = task() {
		if time.Now().After(deadline) {
			t.Fatalf("no progress seen in the API: %+v", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := task(); got.State != "running" || got.Progress.Percent != 40 || got.Progress.Message != "rendering <pages>" || got.Progress.At == nil {
		t.Errorf("running task in the API: %+v", got)
	}
	_, page := e.do(t, "GET", "/queues/jobs?state=running", "", "")
	if !strings.Contains(page, `<progress max="100" value="40">`) || !strings.Contains(page, "rendering &lt;pages&gt;") {
		t.Errorf("the queue page of running tasks lacks the progress:\n%s", page)
	}
	close(release)

	if _, err := e.client.Result(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	got := task()
	if got.State != "completed" || string(got.Result) != `{"url":"/r/1"}` || got.FinishedAt == nil || got.ExpiresAt == nil ||
		got.DurationSeconds == nil || got.RetentionSeconds != 60 {
		t.Errorf("completed task in the API: %+v (result %s)", got, got.Result)
	}
	code, body = e.do(t, "GET", "/api/v1/queues/jobs/tasks?state=completed", "", "")
	var list []apiv1.Task
	if err := json.Unmarshal([]byte(body), &list); code != http.StatusOK || err != nil || len(list) != 1 || list[0].ID != id {
		t.Errorf("list completed: %d %s", code, body)
	}
	_, page = e.do(t, "GET", "/queues/jobs?state=completed", "", "")
	if !strings.Contains(page, id) || !strings.Contains(page, "/r/1") {
		t.Errorf("the queue page of completed tasks lacks the task or its result:\n%s", page)
	}
	_, page = e.do(t, "GET", "/tasks/"+id, "", "")
	if !strings.Contains(page, "<h2>Result</h2>") || !strings.Contains(page, "Kept until") {
		t.Errorf("the task page lacks the result:\n%s", page)
	}
	var qs []apiv1.Queue
	_, body = e.do(t, "GET", "/api/v1/queues", "", "")
	if err := json.Unmarshal([]byte(body), &qs); err != nil || len(qs) != 1 || qs[0].Retained != 1 || qs[0].Pending != 0 {
		t.Errorf("queues after the task completed: %s", body)
	}
	if _, metrics := e.do(t, "GET", "/metrics", "", ""); !strings.Contains(metrics, `brisk_queue_retained{queue="jobs"} 1`) {
		t.Errorf("/metrics lacks the retained gauge:\n%s", metrics)
	}
}
