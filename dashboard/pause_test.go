package dashboard_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/brisktype"
	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/dashboard"
)

func TestPauseAPI(t *testing.T) {
	t.Parallel()
	checkPause(t, setup(t, dashboard.Options{}))
}

func TestPauseOnRedis(t *testing.T) {
	t.Parallel()
	checkPause(t, setupRedis(t, dashboard.Options{}))
}

// queueJSON returns the element of GET /api/v1/queues for name.
func (e *env) queueJSON(t *testing.T, name string) map[string]any {
	t.Helper()
	_, body := e.do(t, "GET", "/api/v1/queues", "", "")
	var qs []map[string]any
	if err := json.Unmarshal([]byte(body), &qs); err != nil {
		t.Fatalf("queues: %v in %s", err, body)
	}
	for _, q := range qs {
		if q["name"] == name {
			return q
		}
	}
	t.Fatalf("no queue %s in %s", name, body)
	return nil
}

// reserved reports how many tasks of queue a Reserve takes now (and acks them).
func (e *env) reserved(t *testing.T, queue string) int {
	t.Helper()
	got, err := e.b.Reserve(context.Background(), broker.ReserveParams{Queues: []broker.QueueLimit{{Name: queue}}, Limit: 10, Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) > 0 {
		ls := make([]broker.Lease, len(got))
		for i, task := range got {
			ls[i] = task.Lease
		}
		if err := e.b.Ack(context.Background(), ls); err != nil {
			t.Fatal(err)
		}
	}
	return len(got)
}

// checkPause pauses and resumes a queue through the API and checks what workers see.
func checkPause(t *testing.T, e *env) {
	e.enqueue(t, "q", `{"type":"a"}`)
	if q := e.queueJSON(t, "q"); q["paused"] != false {
		t.Fatalf("new queue: %v, want paused false", q)
	}
	code, body := e.do(t, "POST", "/api/v1/queues/q/pause", "application/json", "")
	if code != 200 || body != `{"paused":true,"queue":"q"}`+"\n" {
		t.Fatalf("pause: %d %s", code, body)
	}
	if code, body = e.do(t, "POST", "/api/v1/queues/q/pause", "application/json", "{}"); code != 200 {
		t.Fatalf("pause again (idempotent): %d %s", code, body)
	}
	if q := e.queueJSON(t, "q"); q["paused"] != true || q["pending"] != 1.0 {
		t.Fatalf("paused queue: %v", q)
	}
	if n := e.reserved(t, "q"); n != 0 {
		t.Fatalf("Reserve took %d tasks of the paused queue", n)
	}
	e.enqueue(t, "q", `{"type":"a"}`) // still stored
	if q := e.queueJSON(t, "q"); q["pending"] != 2.0 {
		t.Fatalf("enqueue into a paused queue: %v", q)
	}

	// Refused requests change nothing.
	code, body = e.do(t, "POST", "/api/v1/queues/q/resume", "text/plain", "")
	wantError(t, code, body, 415)
	code, body = e.do(t, "POST", "/api/v1/queues/q/resume", "application/x-www-form-urlencoded", "")
	wantError(t, code, body, 415)
	code, body = e.do(t, "POST", "/api/v1/queues/q/resume", "application/json", `{"all":true}`)
	wantError(t, code, body, 400)
	code, body = e.do(t, "POST", "/api/v1/queues/q/resume", "application/json", `{`)
	wantError(t, code, body, 400)
	code, body = e.do(t, "POST", "/api/v1/queues/q/resume", "application/json", "", "Origin", "http://evil.example")
	wantError(t, code, body, 403)
	code, body = e.do(t, "GET", "/api/v1/queues/q/resume", "", "")
	wantError(t, code, body, 405) // a POST route
	if q := e.queueJSON(t, "q"); q["paused"] != true {
		t.Fatalf("a refused resume resumed the queue: %v", q)
	}
	code, body = e.do(t, "POST", "/api/v1/queues/bad%20name/pause", "application/json", "")
	wantError(t, code, body, 400)

	code, body = e.do(t, "POST", "/api/v1/queues/q/resume", "application/json", "{}", "Origin", e.srv.URL)
	if code != 200 || body != `{"paused":false,"queue":"q"}`+"\n" {
		t.Fatalf("resume: %d %s", code, body)
	}
	if q := e.queueJSON(t, "q"); q["paused"] != false {
		t.Fatalf("resumed queue: %v", q)
	}
	if n := e.reserved(t, "q"); n != 2 {
		t.Fatalf("Reserve after resume took %d tasks, want 2", n)
	}

	// Pausing a queue not yet known creates it.
	if code, body = e.do(t, "POST", "/api/v1/queues/later/pause", "application/json", ""); code != 200 {
		t.Fatalf("pause of a new queue: %d %s", code, body)
	}
	if q := e.queueJSON(t, "later"); q["paused"] != true {
		t.Fatalf("queue created by pause: %v", q)
	}
}

// postForm posts a form from the page's origin and returns the status and Location.
func (e *env) postForm(t *testing.T, path string, form url.Values) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", e.srv.URL)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

func TestPauseForms(t *testing.T) {
	t.Parallel()
	e := setup(t, dashboard.Options{})
	e.enqueue(t, "q", `{"type":"a"}`)

	_, page := e.do(t, "GET", "/", "", "")
	m := csrfRE.FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, `action="/queues/q/pause"`) || !strings.Contains(page, `class="pause"`) {
		t.Fatalf("queues page has no pause form:\n%s", page)
	}
	csrf := m[1]
	// Without the CSRF token, or with a forged one: refused, nothing changes.
	if code, _ := e.postForm(t, "/queues/q/pause", url.Values{"next": {"/"}}); code != 403 {
		t.Fatalf("pause form without csrf: %d", code)
	}
	if code, _ := e.postForm(t, "/queues/q/pause", url.Values{"csrf": {"forged"}}); code != 403 {
		t.Fatalf("pause form with a forged csrf: %d", code)
	}
	if q := e.queueJSON(t, "q"); q["paused"] != false {
		t.Fatalf("a refused form paused the queue: %v", q)
	}

	code, loc := e.postForm(t, "/queues/q/pause", url.Values{"csrf": {csrf}, "next": {"/"}})
	if code != http.StatusSeeOther || loc != "/" {
		t.Fatalf("pause form: %d to %q", code, loc)
	}
	if q := e.queueJSON(t, "q"); q["paused"] != true {
		t.Fatalf("after the pause form: %v", q)
	}
	_, page = e.do(t, "GET", "/?fragment=1", "", "")
	if !strings.Contains(page, `action="/queues/q/resume"`) || !strings.Contains(page, `badge paused`) {
		t.Fatalf("queues page of a paused queue has no resume form or badge:\n%s", page)
	}

	// The queue page offers resume; an open redirect through next is not possible.
	_, page = e.do(t, "GET", "/queues/q", "", "")
	if !strings.Contains(page, `action="/queues/q/resume"`) || !strings.Contains(page, "resume queue") {
		t.Fatalf("queue page of a paused queue has no resume form:\n%s", page)
	}
	code, loc = e.postForm(t, "/queues/q/resume", url.Values{"csrf": {csrf}, "next": {"//evil.example/"}})
	if code != http.StatusSeeOther || loc != "/queues/q" {
		t.Fatalf("resume form: %d to %q", code, loc)
	}
	if q := e.queueJSON(t, "q"); q["paused"] != false {
		t.Fatalf("after the resume form: %v", q)
	}
	_, page = e.do(t, "GET", "/queues/q", "", "")
	if !strings.Contains(page, `action="/queues/q/pause"`) || strings.Contains(page, "badge paused") {
		t.Fatalf("queue page of a resumed queue:\n%s", page)
	}
}

func TestPauseAuthRequired(t *testing.T) {
	t.Parallel()
	e := setup(t, dashboard.Options{Token: "s3cret"})
	for _, path := range []string{"/api/v1/queues/q/pause", "/api/v1/queues/q/pause?token=s3cret"} {
		code, body := e.do(t, "POST", path, "application/json", "")
		wantError(t, code, body, 401)
		code, body = e.do(t, "POST", path, "application/json", "", "Authorization", "Bearer wrong")
		wantError(t, code, body, 401)
	}
	if code, _ := e.do(t, "POST", "/queues/q/pause", "application/x-www-form-urlencoded", "next=/"); code != 401 {
		t.Fatalf("pause form without credentials: %d", code)
	}
	if _, body := e.do(t, "GET", "/api/v1/queues", "", "", "Authorization", "Bearer s3cret"); body != "[]\n" {
		t.Fatalf("an unauthenticated pause changed something: %s", body)
	}
	if code, body := e.do(t, "POST", "/api/v1/queues/q/pause", "application/json", "", "Authorization", "Bearer s3cret"); code != 200 {
		t.Fatalf("pause with the token: %d %s", code, body)
	}
	_, body := e.do(t, "GET", "/api/v1/queues", "", "", "Authorization", "Bearer s3cret")
	if !strings.Contains(body, `"paused":true`) {
		t.Fatalf("after an authenticated pause: %s", body)
	}
}

func TestPauseReadOnly(t *testing.T) {
	t.Parallel()
	e := setup(t, dashboard.Options{ReadOnly: true})
	code, body := e.do(t, "POST", "/api/v1/queues/q/pause", "application/json", "")
	wantError(t, code, body, 403)
	if err := e.b.Enqueue(context.Background(), []*broker.Task{{TaskInfo: brisktype.TaskInfo{ID: "t1", Queue: "q", Type: "a", MaxAttempts: 1, EnqueuedAt: time.Now(), ReadyAt: time.Now()}}}); err != nil {
		t.Fatal(err)
	}
	if _, page := e.do(t, "GET", "/", "", ""); strings.Contains(page, "/pause") {
		t.Fatalf("a read-only dashboard offers pause:\n%s", page)
	}
}

// noPauser hides the optional interfaces of a broker.
type noPauser struct{ broker.Broker }

func TestPauseUnsupported(t *testing.T) {
	t.Parallel()
	b, err := brisk.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h, err := dashboard.New(noPauser{b}, dashboard.Options{Context: ctx})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); cancel(); b.Close() })
	e := &env{b: b, client: brisk.NewClient(b), srv: srv}
	e.enqueue(t, "q", `{"type":"a"}`)
	code, body := e.do(t, "POST", "/api/v1/queues/q/pause", "application/json", "")
	wantError(t, code, body, 501)
	if !strings.Contains(body, "cannot pause") {
		t.Fatalf("501 body: %s", body)
	}
	if _, page := e.do(t, "GET", "/", "", ""); strings.Contains(page, "/pause") {
		t.Fatalf("the page offers pause on a broker that cannot:\n%s", page)
	}
}
