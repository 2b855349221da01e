package apiv1

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/briskq/brisk"
)

func TestShapes(t *testing.T) {
	t.Parallel()
	q, _ := json.Marshal(Queues([]brisk.QueueInfo{
		{Name: "five_second", SLA: 5 * time.Second, Pending: 2, Latency: 6 * time.Second},
		{Name: "plain", Dead: 1, Completed: 7, Failed: 3, Paused: true, Cancelled: 2},
	}))
	want := `[{"name":"five_second","pending":2,"scheduled":0,"running":0,"dead":0,"latency_seconds":6,"sla_seconds":5,"within_sla":false,"completed":0,"failed":0,"paused":false,"cancelled":0,"latency_source":"ready_at","retained":0,"retention_seconds":0},` +
		`{"name":"plain","pending":0,"scheduled":0,"running":0,"dead":1,"latency_seconds":0,"sla_seconds":null,"within_sla":true,"completed":7,"failed":3,"paused":true,"cancelled":2,"latency_source":"ready_at","retained":0,"retention_seconds":0}]`
	if string(q) != want {
		t.Errorf("queues:\n%s\nwant\n%s", q, want)
	}
	if b, _ := json.Marshal(Queues(nil)); string(b) != "[]" {
		t.Errorf("no queue: %s", b)
	}

	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, c := range []struct {
		payload []byte
		want    string
	}{
		{nil, `"payload":null,"headers":{},"retention_seconds":0,"finished_at":null,"expires_at":null,"duration_seconds":null,"result":null,"progress":null}`},
		{[]byte(`{"a":1}`), `"payload":{"a":1},"headers":{},"retention_seconds":0,"finished_at":null,"expires_at":null,"duration_seconds":null,"result":null,"progress":null}`},
		{[]byte("\xff<"), `"payload":null,"payload_base64":"/zw=","headers":{},"retention_seconds":0,"finished_at":null,"expires_at":null,"duration_seconds":null,"result":null,"progress":null}`},
	} {
		b, _ := json.Marshal(FromTask(&brisk.TaskInfo{ID: "i", Queue: "q", Type: "t", State: brisk.StateDead, EnqueuedAt: at, Payload: c.payload}))
		prefix := `{"id":"i","queue":"q","type":"t","state":"dead","attempt":0,"max_attempts":0,"timeout_seconds":0,` +
			`"enqueued_at":"2026-01-02T03:04:05.000000006Z","ready_at":null,"started_at":null,"failed_at":null,"lease_until":null,"last_error":"",`
		if string(b) != prefix+c.want {
			t.Errorf("task with payload %q:\n%s", c.payload, b)
		}
	}
	done, _ := json.Marshal(FromTask(&brisk.TaskInfo{ID: "i", Queue: "q", Type: "t", State: brisk.StateCompleted, Payload: []byte("1"),
		StartedAt: at, FinishedAt: at.Add(1500 * time.Millisecond), ExpiresAt: at.Add(time.Hour), Retention: time.Hour,
		Result: []byte{0xff}, Progress: &brisk.Progress{Percent: 50, Message: "half", At: at}}))
	if want := `"payload":1,"headers":{},"retention_seconds":3600,"finished_at":"2026-01-02T03:04:06.500000006Z",` +
		`"expires_at":"2026-01-02T04:04:05.000000006Z","duration_seconds":1.5,"result":null,"result_base64":"/w==",` +
		`"progress":{"percent":50,"message":"half","at":"2026-01-02T03:04:05.000000006Z"}}`; !strings.HasSuffix(string(done), want) {
		t.Errorf("completed task:\n%s\nwant it to end with\n%s", done, want)
	}
	p, _ := json.Marshal(PeriodicList([]brisk.PeriodicInfo{{Periodic: brisk.Periodic{Name: "n", Spec: "@every 1s", CatchUp: true,
		Task: &brisk.Task{Type: "t", Queue: "q", MaxAttempts: 3}}, LastRun: at, NextRun: at.Add(time.Second), LastTaskID: "x"}}))
	if string(p) != `[{"name":"n","spec":"@every 1s","queue":"q","type":"t","payload":null,"max_attempts":3,"timeout_seconds":0,"catch_up":true,`+
		`"created_at":null,"updated_at":null,"last_run":"2026-01-02T03:04:05.000000006Z","last_task_id":"x","next_run":"2026-01-02T03:04:06.000000006Z"}]` {
		t.Errorf("periodic: %s", p)
	}
	if l, _ := json.Marshal(Limits([]brisk.Limit{{Queue: "q", Rate: 5, Per: time.Minute, Burst: 5}})); string(l) !=
		`[{"queue":"q","type":"","rate":5,"per_seconds":60,"burst":5,"max_running":0}]` {
		t.Errorf("limits: %s", l)
	}
	if b, _ := json.Marshal(Workers([]brisk.WorkerInfo{{ID: "w", LastSeen: at}})); string(b) !=
		`[{"id":"w","host":"","pid":0,"queues":[],"concurrency":0,"busy":0,"started_at":null,"last_seen":"2026-01-02T03:04:05.000000006Z","version":""}]` {
		t.Errorf("workers: %s", b)
	}
}
