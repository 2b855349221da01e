package dashboard_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/dashboard"
)

func TestUniqueEnqueueAPI(t *testing.T) {
	t.Parallel()
	e := setup(t, dashboard.Options{})
	first := e.enqueue(t, "q", `{"type":"a","payload":{"n":1},"unique_for_seconds":60}`)
	code, body := e.do(t, "POST", "/api/v1/queues/q/tasks", "application/json", `{"type":"a","payload":{"n":1},"unique_for_seconds":60}`)
	var dup map[string]string
	if err := json.Unmarshal([]byte(body), &dup); code != http.StatusConflict || err != nil || dup["id"] != first || !strings.Contains(dup["error"], "duplicate") {
		t.Fatalf("second unique enqueue: %d %s; want 409 with id %s", code, body, first)
	}
	e.enqueue(t, "q", `{"type":"a","unique_for_seconds":60,"unique_key":"k"}`)
	if code, _ := e.do(t, "POST", "/api/v1/queues/q/tasks", "application/json", `{"type":"b","unique_for_seconds":60,"unique_key":"k"}`); code != http.StatusConflict {
		t.Errorf("explicit key held: %d, want 409", code)
	}
	for _, bad := range []string{`{"type":"a","unique_for_seconds":-1}`, `{"type":"a","unique_key":"k"}`, `{"type":"a","unique_for_seconds":1e12}`} {
		code, body := e.do(t, "POST", "/api/v1/queues/q/tasks", "application/json", bad)
		wantError(t, code, body, http.StatusBadRequest)
	}
	if q := e.queueJSON(t, "q"); q["pending"] != 2.0 {
		t.Errorf("pending = %v, want 2", q["pending"])
	}
}

func TestCancelAPIAndButton(t *testing.T) {
	t.Parallel()
	e := setup(t, dashboard.Options{})
	id := e.enqueue(t, "q", `{"type":"a","delay_seconds":3600}`)
	_, page := e.do(t, "GET", "/tasks/"+id, "", "")
	m := csrfRE.FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, `action="/tasks/`+id+`/cancel"`) {
		t.Fatalf("task page of a scheduled task has no cancel button:\n%s", page)
	}
	if code, _ := e.postForm(t, "/tasks/"+id+"/cancel", url.Values{"csrf": {"forged"}}); code != 403 {
		t.Fatalf("cancel form with a forged csrf: %d", code)
	}
	code, loc := e.postForm(t, "/tasks/"+id+"/cancel", url.Values{"csrf": {m[1]}})
	if code != http.StatusSeeOther || loc != "/tasks/"+id {
		t.Fatalf("cancel form: %d to %q", code, loc)
	}
	_, page = e.do(t, "GET", "/tasks/"+id, "", "")
	if !strings.Contains(page, "state-cancelled") || strings.Contains(page, "cancel task") {
		t.Errorf("task page after cancel: no cancelled badge, or still a cancel button:\n%s", page)
	}
	if q := e.queueJSON(t, "q"); q["cancelled"] != 1.0 || q["scheduled"] != 0.0 {
		t.Errorf("queue after cancel: %v", q)
	}
	other := e.enqueue(t, "q", `{"type":"a"}`)
	code, body := e.do(t, "POST", "/api/v1/tasks/"+other+"/cancel", "application/json", "")
	if code != 200 || body != `{"id":"`+other+`","was":"pending"}`+"\n" {
		t.Errorf("cancel API: %d %s", code, body)
	}
	code, body = e.do(t, "POST", "/api/v1/tasks/nope/cancel", "application/json", "")
	wantError(t, code, body, http.StatusNotFound)
	code, body = e.do(t, "GET", "/api/v1/queues/q/tasks?state=cancelled", "", "")
	if code != 200 || !strings.Contains(body, id) || !strings.Contains(body, other) {
		t.Errorf("cancelled listing: %d %s", code, body)
	}
	ro := setup(t, dashboard.Options{ReadOnly: true})
	rid, err := ro.client.Enqueue(t.Context(), brisk.NewTask("a", nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, page := ro.do(t, "GET", "/tasks/"+rid, "", ""); strings.Contains(page, "cancel task") {
		t.Errorf("read-only dashboard shows a cancel button")
	}
}

func TestPeriodicAndLimitsAPI(t *testing.T) {
	t.Parallel()
	e := setup(t, dashboard.Options{})
	code, body := e.do(t, "POST", "/api/v1/periodic", "application/json",
		`{"name":"nightly","spec":"0 0 2 * * *","queue":"reports","type":"report.build","payload":{"k":1},"catch_up":true}`)
	if code != http.StatusCreated || !strings.Contains(body, `"next_run":"`) || !strings.Contains(body, `"catch_up":true`) {
		t.Fatalf("add schedule: %d %s", code, body)
	}
	for _, bad := range []string{`{"name":"x","spec":"61 * * * *","type":"t"}`, `{"name":"x","spec":"@every 1s"}`, `{"name":"bad name","spec":"@every 1s","type":"t"}`} {
		code, body := e.do(t, "POST", "/api/v1/periodic", "application/json", bad)
		wantError(t, code, body, http.StatusBadRequest)
	}
	code, body = e.do(t, "GET", "/api/v1/periodic", "", "")
	var ps []map[string]any
	if err := json.Unmarshal([]byte(body), &ps); code != 200 || err != nil || len(ps) != 1 || ps[0]["name"] != "nightly" {
		t.Fatalf("list schedules: %d %s", code, body)
	}
	_, page := e.do(t, "GET", "/periodic", "", "")
	if !strings.Contains(page, `data-schedule="nightly"`) || !strings.Contains(page, "no scheduler is running") {
		t.Errorf("periodic page:\n%s", page)
	}
	if code, body := e.do(t, "POST", "/api/v1/periodic/nightly/delete", "application/json", ""); code != 200 || !strings.Contains(body, "nightly") {
		t.Errorf("remove schedule: %d %s", code, body)
	}
	code, body = e.do(t, "POST", "/api/v1/periodic/nightly/delete", "application/json", "")
	wantError(t, code, body, http.StatusNotFound)

	code, body = e.do(t, "POST", "/api/v1/limits", "application/json", `{"queue":"emails","rate":100,"per_seconds":1}`)
	if code != 200 || body != `{"queue":"emails","type":"","rate":100,"per_seconds":1,"burst":100,"max_running":0}`+"\n" {
		t.Fatalf("set limit: %d %s", code, body)
	}
	for _, bad := range []string{`{"queue":"emails"}`, `{"queue":"emails","rate":-1,"per_seconds":1}`, `{"queue":"emails","rate":1}`, `{"queue":"a b","max_running":1}`} {
		code, body := e.do(t, "POST", "/api/v1/limits", "application/json", bad)
		wantError(t, code, body, http.StatusBadRequest)
	}
	if code, body := e.do(t, "GET", "/api/v1/limits", "", ""); code != 200 || !strings.Contains(body, `"rate":100`) {
		t.Errorf("list limits: %d %s", code, body)
	}
	if _, page := e.do(t, "GET", "/periodic", "", ""); !strings.Contains(page, `data-limit="emails/"`) {
		t.Errorf("periodic page has no limit row:\n%s", page)
	}
	if code, _ := e.do(t, "POST", "/api/v1/limits/delete", "application/json", `{"queue":"emails"}`); code != 200 {
		t.Errorf("delete limit: %d", code)
	}
	code, body = e.do(t, "POST", "/api/v1/limits/delete", "application/json", `{"queue":"emails"}`)
	wantError(t, code, body, http.StatusNotFound)
}
