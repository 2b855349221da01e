package dashboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/broker"
	_ "github.com/briskq/brisk/broker/redisbroker"  // redis:// for the API tests on a network broker
	_ "github.com/briskq/brisk/broker/sqlitebroker" // sqlite://
	"github.com/briskq/brisk/dashboard"
	"github.com/briskq/brisk/internal/cli"
	"github.com/briskq/brisk/internal/redistest"
	"github.com/briskq/brisk/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// env is one dashboard on its own SQLite file, served by httptest.
type env struct {
	url    string // the broker's
	b      broker.Broker
	client *brisk.Client
	srv    *httptest.Server
}

// setup serves a dashboard of a fresh SQLite broker.
func setup(t testing.TB, opts dashboard.Options) *env {
	t.Helper()
	return serve(t, "sqlite://"+filepath.Join(t.TempDir(), "b.db"), opts)
}

// setupRedis serves a dashboard of a Redis broker under a fresh key prefix, deleted at the
// end. Without Redis (BRISK_REDIS_URL, default the local one) the test fails under CI and
// is skipped out loud elsewhere.
func setupRedis(t testing.TB, opts dashboard.Options) *env {
	t.Helper()
	raw := redistest.URL(t)
	prefix := redistest.NewPrefix(t, raw, "brisktest-dash")
	return serve(t, testenv.WithPrefix(t, raw, prefix), opts)
}

// serve opens the broker at brokerURL and serves its dashboard on httptest.
func serve(t testing.TB, brokerURL string, opts dashboard.Options) *env {
	t.Helper()
	u := brokerURL
	b, err := brisk.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	opts.Context = ctx
	if opts.SampleInterval == 0 {
		opts.SampleInterval = 200 * time.Millisecond
	}
	h, err := dashboard.New(b, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		b.Close()
	})
	return &env{url: u, b: b, client: brisk.NewClient(b), srv: srv}
}

// do sends a request and returns the status and body.
func (e *env) do(t testing.TB, method, path, contentType, body string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// enqueue enqueues through the API and returns the task's id.
func (e *env) enqueue(t testing.TB, queue, body string) string {
	t.Helper()
	code, resp := e.do(t, "POST", "/api/v1/queues/"+queue+"/tasks", "application/json", body)
	if code != http.StatusCreated {
		t.Fatalf("enqueue %s: %d %s", body, code, resp)
	}
	var out struct{ ID string }
	if err := json.Unmarshal([]byte(resp), &out); err != nil || out.ID == "" {
		t.Fatalf("enqueue response %q: %v", resp, err)
	}
	return out.ID
}

// wantError checks an API error: the status and a JSON body {"error": "..."}.
func wantError(t *testing.T, code int, body string, want int) {
	t.Helper()
	if code != want {
		t.Fatalf("status %d, want %d (body %s)", code, want, body)
	}
	var e map[string]any
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", body, err)
	}
	if msg, ok := e["error"].(string); !ok || msg == "" || len(e) != 1 {
		t.Fatalf("error body %q, want exactly {\"error\": \"...\"}", body)
	}
}

// makeDead runs a worker whose handler refuses to retry until n tasks of queue are dead.
func makeDead(t testing.TB, e *env, queue string, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		ids = append(ids, e.enqueue(t, queue, `{"type":"fail","payload":{"n":1}}`))
	}
	w, err := brisk.NewWorker(e.b, brisk.WorkerConfig{Queues: []brisk.QueueSpec{{Name: queue}}, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	w.HandleFunc("fail", func(ctx context.Context, t *brisk.Task) error { return brisk.SkipRetry(errors.New("x")) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("worker: %v", err)
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		qs, err := brisk.NewInspector(e.b).Queues(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range qs {
			if q.Name == queue && q.Dead == int64(n) {
				return ids
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("tasks of %s not dead after 20s: %+v", queue, qs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestQueuesAPIMatchesCLI(t *testing.T) {
	t.Parallel()
	checkQueuesMatchCLI(t, setup(t, dashboard.Options{}))
}

// TestAPIOnRedis runs the API contract and the dead-task actions on a network broker.
func TestAPIOnRedis(t *testing.T) {
	t.Parallel()
	t.Run("queues", func(t *testing.T) { checkQueuesMatchCLI(t, setupRedis(t, dashboard.Options{})) })
	t.Run("dead", func(t *testing.T) { checkDeadRetryAndDelete(t, setupRedis(t, dashboard.Options{})) })
	t.Run("errors", func(t *testing.T) {
		e := setupRedis(t, dashboard.Options{MaxBodyBytes: 4096})
		code, body := e.do(t, "POST", "/api/v1/queues/q/tasks", "application/json", `{"type":"a","x":1}`)
		wantError(t, code, body, 400)
		code, body = e.do(t, "POST", "/api/v1/queues/q/tasks", "application/json", `{"type":"a","payload":"`+strings.Repeat("x", 5000)+`"}`)
		wantError(t, code, body, 413)
		code, body = e.do(t, "GET", "/api/v1/tasks/nope", "", "")
		wantError(t, code, body, 404)
	})
}

// checkQueuesMatchCLI checks that GET /api/v1/queues is what "brisk queues --json" prints.
func checkQueuesMatchCLI(t *testing.T, e *env) {
	e.enqueue(t, "five_second", `{"type":"a","payload":{"x":1}}`)
	e.enqueue(t, "five_second", `{"type":"a","payload":[1,2],"delay_seconds":600}`)
	e.enqueue(t, "reports", `{"type":"b","payload":"text"}`)
	makeDead(t, e, "one_minute", 1)

	code, body := e.do(t, "GET", "/api/v1/queues", "", "")
	if code != 200 {
		t.Fatalf("GET /api/v1/queues: %d %s", code, body)
	}
	var out, errOut strings.Builder
	if c := cli.Main([]string{"queues", "--broker", e.url, "--json"}, nil, &out, &errOut); c != 0 {
		t.Fatalf("brisk queues --json: exit %d: %s", c, errOut.String())
	}
	var api, fromCLI []map[string]any
	if err := json.Unmarshal([]byte(body), &api); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out.String()), &fromCLI); err != nil {
		t.Fatal(err)
	}
	if len(api) != 3 || len(api) != len(fromCLI) {
		t.Fatalf("api %d queues, cli %d, want 3:\n%s\n%s", len(api), len(fromCLI), body, out.String())
	}
	for i := range api {
		// Latency grows between the two reads; everything else is equal.
		la, lc := api[i]["latency_seconds"].(float64), fromCLI[i]["latency_seconds"].(float64)
		if lc < la || lc-la > 5 {
			t.Errorf("queue %v: latency api %v, cli %v", api[i]["name"], la, lc)
		}
		delete(api[i], "latency_seconds")
		delete(fromCLI[i], "latency_seconds")
		a, _ := json.Marshal(api[i])
		c, _ := json.Marshal(fromCLI[i])
		if !bytes.Equal(a, c) {
			t.Errorf("queue %d: api %s\ncli %s", i, a, c)
		}
	}
	if api[0]["name"] != "five_second" || api[0]["pending"] != 1.0 || api[0]["scheduled"] != 1.0 || api[0]["sla_seconds"] != 5.0 {
		t.Errorf("five_second: %v", api[0])
	}
	if api[1]["name"] != "one_minute" || api[1]["dead"] != 1.0 {
		t.Errorf("one_minute: %v", api[1])
	}
	if api[2]["name"] != "reports" || api[2]["sla_seconds"] != nil {
		t.Errorf("reports: %v", api[2])
	}
}

func TestEnqueueThenVisible(t *testing.T) {
	t.Parallel()
	e := setup(t, dashboard.Options{})
	id := e.enqueue(t, "mail", `{"type":"email.send","payload":{"to":"ada@example.com"}}`)
	delayed := e.enqueue(t, "mail", `{"type":"email.send","payload":null,"delay_seconds":30}`)

	_, body := e.do(t, "GET", "/api/v1/queues", "", "")
	var qs []struct {
		Name               string
		Pending, Scheduled int64
	}
	if err := json.Unmarshal([]byte(body), &qs); err != nil {
		t.Fatal(err)
	}
	if len(qs) != 1 || qs[0].Name != "mail" || qs[0].Pending != 1 || qs[0].Scheduled != 1 {
		t.Fatalf("queues after enqueue: %s", body)
	}

	code, body := e.do(t, "GET", "/api/v1/tasks/"+id, "", "")
	var task struct {
		ID, Queue, Type, State string
		Payload                map[string]string
	}
	if err := json.Unmarshal([]byte(body), &task); err != nil || code != 200 {
		t.Fatalf("GET task: %d %s", code, body)
	}
	if task.ID != id || task.Queue != "mail" || task.Type != "email.send" || task.State != "pending" || task.Payload["to"] != "ada@example.com" {
		t.Fatalf("task: %s", body)
	}

	_, body = e.do(t, "GET", "/api/v1/queues/mail/tasks?state=scheduled", "", "")
	if !strings.Contains(body, delayed) || strings.Contains(body, id) {
		t.Fatalf("scheduled listing: %s", body)
	}
	code, body = e.do(t, "GET", "/api/v1/queues/mail/tasks?state=bogus", "", "")
	wantError(t, code, body, 400)
	code, body = e.do(t, "GET", "/api/v1/queues/mail/tasks?limit=0", "", "")
	wantError(t, code, body, 400)
	code, body = e.do(t, "GET", "/api/v1/tasks/no-such-id", "", "")
	wantError(t, code, body, 404)
	code, body = e.do(t, "GET", "/api/v1/nothing", "", "")
	wantError(t, code, body, 404)

	// The pages show it too.
	code, body = e.do(t, "GET", "/", "", "")
	if code != 200 || !strings.Contains(body, `data-queue="mail"`) {
		t.Fatalf("queues page: %d %s", code, body)
	}
	code, body = e.do(t, "GET", "/queues/mail", "", "")
	if code != 200 || !strings.Contains(body, id) || !strings.Contains(body, "<svg") {
		t.Fatalf("queue page: %d %s", code, body)
	}
	code, body = e.do(t, "GET", "/?fragment=1", "", "")
	if code != 200 || strings.Contains(body, "<html") || !strings.Contains(body, `data-queue="mail"`) {
		t.Fatalf("queues fragment: %d %s", code, body)
	}
	if code, body = e.do(t, "GET", "/workers", "", ""); code != 200 {
		t.Fatalf("workers page: %d %s", code, body)
	}
	if code, body = e.do(t, "GET", "/api/v1/workers", "", ""); code != 200 || body != "[]\n" {
		t.Fatalf("workers: %d %q", code, body)
	}
	if code, _ = e.do(t, "GET", "/static/app.js", "", ""); code != 200 {
		t.Fatalf("static: %d", code)
	}
}

func TestAuthRequired(t *testing.T) {
	t.Parallel()
	e := setup(t, dashboard.Options{Token: "s3cret", BasicAuthUser: "ops", BasicAuthPassword: "pw"})
	enq := `{"type":"a","payload":{}}`

	code, body := e.do(t, "POST", "/api/v1/queues/q/tasks", "application/json", enq)
	wantError(t, code, body, 401)
	code, body = e.do(t, "POST", "/api/v1/queues/q/tasks", "application/json", enq, "Authorization", "Bearer wrong")
	wantError(t, code, body, 401)
	code, body = e.do(t, "POST", "/api/v1/queues/q/tasks?token=s3cret", "application/json", enq)
	wantError(t, code, body, 401) // ?token= is for pages, and never for a state change
	code, body = e.do(t, "POST", "/queues/q/dead/retry", "application/x-www-form-urlencoded", "all=1")
	if code != 401 {
		t.Fatalf("form POST without credentials: %d %s", code, body)
	}
	code, body = e.do(t, "GET", "/api/v1/queues", "", "")
	wantError(t, code, body, 401)
	if code, _ = e.do(t, "GET", "/", "", ""); code != 401 {
		t.Fatalf("page without credentials: %d", code)
	}
	_, body = e.do(t, "GET", "/api/v1/queues", "", "", "Authorization", "Bearer s3cret")
	if body != "[]\n" {
		t.Fatalf("nothing may have been enqueued: %s", body)
	}

	code, body = e.do(t, "POST", "/api/v1/queues/q/tasks", "application/json", enq, "Authorization", "Bearer s3cret")
	if code != 201 {
		t.Fatalf("with bearer token: %d %s", code, body)
	}
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/queues/q/tasks", strings.NewReader(enq))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("ops", "pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("with basic auth: %d", resp.StatusCode)
	}

	// ?token= on a page sets a cookie that later page requests (the polling) carry, and
	// redirects to the page without it (TestTokenOnlyOnceInURL).
	resp, _ = send(t, e.get(t, "/?token=s3cret", ""))
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		cookie = c
	}
	if resp.StatusCode != http.StatusSeeOther || cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("page with ?token=: %d, cookie %+v", resp.StatusCode, cookie)
	}
	req, _ = http.NewRequest("GET", e.srv.URL+"/?fragment=1", nil)
	req.AddCookie(cookie)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("fragment with cookie: %d", resp.StatusCode)
	}
}

func TestCrossOriginRefused(t *testing.T) {
	t.Parallel()
	e := setup(t, dashboard.Options{})
	enq := `{"type":"a","payload":{}}`
	code, body := e.do(t, "POST", "/api/v1/queues/q/tasks", "application/json", enq, "Origin", "http://evil.example")
	wantError(t, code, body, 403)
	code, body = e.do(t, "POST", "/api/v1/queues/q/tasks", "application/json", enq, "Referer", "http://evil.example/page")
	wantError(t, code, body, 403)
	code, body = e.do(t, "POST", "/api/v1/queues/q/tasks", "application/json", enq, "Sec-Fetch-Site", "cross-site")
	wantError(t, code, body, 403)
	// A simple cross-site form can only send form or text content types: refused.
	code, body = e.do(t, "POST", "/api/v1/queues/q/tasks", "text/plain", enq)
	wantError(t, code, body, 415)
	// A form without the CSRF token, even from the same origin.
	code, body = e.do(t, "POST", "/queues/q/dead/retry", "application/x-www-form-urlencoded", "all=1", "Origin", e.srv.URL)
	if code != 403 {
		t.Fatalf("form without csrf token: %d %s", code, body)
	}
	code, body = e.do(t, "POST", "/queues/q/dead/retry", "application/x-www-form-urlencoded", "all=1&csrf=forged", "Origin", e.srv.URL)
	if code != 403 {
		t.Fatalf("form with a forged csrf token: %d %s", code, body)
	}
	code, body = e.do(t, "DELETE", "/api/v1/queues/q/tasks", "", "")
	wantError(t, code, body, 405)
	_, body = e.do(t, "GET", "/api/v1/queues", "", "")
	if body != "[]\n" {
		t.Fatalf("a refused request changed something: %s", body)
	}
	// Same origin is fine.
	if code, body = e.do(t, "POST", "/api/v1/queues/q/tasks", "application/json", enq, "Origin", e.srv.URL); code != 201 {
		t.Fatalf("same-origin POST: %d %s", code, body)
	}
}

func TestOversizedBody(t *testing.T) {
	t.Parallel()
	e := setup(t, dashboard.Options{MaxBodyBytes: 4096})
	big := `{"type":"a","payload":"` + strings.Repeat("x", 8000) + `"}`
	code, body := e.do(t, "POST", "/api/v1/queues/q/tasks", "application/json", big)
	wantError(t, code, body, 413)
	// Without a Content-Length (chunked), the limit is hit while reading.
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/queues/q/tasks", io.MultiReader(strings.NewReader(big)))
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantError(t, resp.StatusCode, string(b), 413)
	// Over the broker's payload limit but within the body limit: 413 too.
	e2 := setup(t, dashboard.Options{})
	huge := `{"type":"a","payload":"` + strings.Repeat("x", 1<<20) + `"}`
	code, body = e2.do(t, "POST", "/api/v1/queues/q/tasks", "application/json", huge)
	wantError(t, code, body, 413)
}

func TestMalformedJSON(t *testing.T) {
	t.Parallel()
	e := setup(t, dashboard.Options{})
	for _, body := range []string{
		``,
		`{`,
		`not json`,
		`{"type":"a","payload":{},"priority":1}`, // unknown field
		`{"type":"a"} {"type":"b"}`,              // two values
		`{"type":"a","delay_seconds":"soon"}`,
		`{"type":"a","delay_seconds":-1}`,
		`{"payload":{}}`,       // no type
		`{"type":"bad type!"}`, // invalid type name
		`[{"type":"a"}]`,
	} {
		code, resp := e.do(t, "POST", "/api/v1/queues/q/tasks", "application/json", body)
		if code != 400 {
			t.Errorf("body %q: status %d, want 400 (%s)", body, code, resp)
			continue
		}
		wantError(t, code, resp, 400)
	}
	for _, body := range []string{`{}`, `{"ids":[],"all":false}`, `{"ids":["x"],"all":true}`, `{"all":true,"x":1}`, `{"ids":"x"}`} {
		code, resp := e.do(t, "POST", "/api/v1/queues/q/dead/retry", "application/json", body)
		wantError(t, code, resp, 400)
	}
	_, resp := e.do(t, "GET", "/api/v1/queues", "", "")
	if resp != "[]\n" {
		t.Fatalf("a refused request changed something: %s", resp)
	}
}

func TestPayloadEscapedInPages(t *testing.T) {
	t.Parallel()
	e := setup(t, dashboard.Options{})
	id := e.enqueue(t, "q", `{"type":"a","payload":{"html":"<script>alert(1)</script><img src=x onerror=alert(2)>"}}`)
	// A payload that is not JSON at all is shown as a quoted string, escaped too.
	task := brisk.NewTask("a", []byte("</pre><script>alert(3)</script>"), brisk.InQueue("q"))
	raw, err := e.client.Enqueue(context.Background(), task)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/tasks/" + id, "/tasks/" + raw, "/queues/q", "/queues/q?fragment=1"} {
		code, body := e.do(t, "GET", path, "", "")
		if code != 200 {
			t.Fatalf("%s: %d", path, code)
		}
		if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x") {
			t.Errorf("%s renders the payload as HTML:\n%s", path, body)
		}
		if !strings.Contains(body, "&lt;script&gt;alert") {
			t.Errorf("%s does not show the payload as text:\n%s", path, body)
		}
	}
	// The API returns the payload as it is.
	_, body := e.do(t, "GET", "/api/v1/tasks/"+id, "", "")
	if !strings.Contains(body, `"<script>alert(1)</script>`) {
		t.Errorf("API payload: %s", body)
	}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func TestDeadRetryAndDelete(t *testing.T) {
	t.Parallel()
	checkDeadRetryAndDelete(t, setup(t, dashboard.Options{}))
}

// checkDeadRetryAndDelete retries and deletes dead tasks through the API and the forms.
func checkDeadRetryAndDelete(t *testing.T, e *env) {
	ids := makeDead(t, e, "q", 4)
	dead := func() string {
		_, body := e.do(t, "GET", "/api/v1/queues/q/tasks?state=dead", "", "")
		return body
	}

	// API: retry one by id.
	code, body := e.do(t, "POST", "/api/v1/queues/q/dead/retry", "application/json", `{"ids":["`+ids[0]+`"]}`)
	if code != 200 || body != `{"retried":1}`+"\n" {
		t.Fatalf("retry one: %d %s", code, body)
	}
	if d := dead(); strings.Contains(d, ids[0]) || !strings.Contains(d, ids[1]) {
		t.Fatalf("dead after retrying one: %s", d)
	}
	_, body = e.do(t, "GET", "/api/v1/tasks/"+ids[0], "", "")
	if !strings.Contains(body, `"state": "pending"`) && !strings.Contains(body, `"state":"pending"`) {
		t.Fatalf("retried task: %s", body)
	}

	// Pages: the dead list offers retry and delete forms with a CSRF token.
	_, page := e.do(t, "GET", "/queues/q?state=dead", "", "")
	m := csrfRE.FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, `class="retry"`) {
		t.Fatalf("dead list has no retry form:\n%s", page)
	}
	form := url.Values{"csrf": {m[1]}, "id": {ids[1]}, "next": {"/queues/q?state=dead"}}
	req, _ := http.NewRequest("POST", e.srv.URL+"/queues/q/dead/delete", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", e.srv.URL)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/queues/q?state=dead" {
		t.Fatalf("form delete: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if code, _ := e.do(t, "GET", "/api/v1/tasks/"+ids[1], "", ""); code != 404 {
		t.Fatalf("deleted task still there: %d", code)
	}
	// An open redirect through next is not possible.
	form = url.Values{"csrf": {m[1]}, "id": {"none"}, "next": {"//evil.example/"}}
	req, _ = http.NewRequest("POST", e.srv.URL+"/queues/q/dead/retry", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err = client.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); loc != "/queues/q?state=dead" {
		t.Fatalf("redirect to %q", loc)
	}

	// API: delete all the rest.
	code, body = e.do(t, "POST", "/api/v1/queues/q/dead/delete", "application/json", `{"all":true}`)
	if code != 200 || body != `{"deleted":2}`+"\n" {
		t.Fatalf("delete all: %d %s", code, body)
	}
	if d := dead(); d != "[]\n" {
		t.Fatalf("dead after delete all: %s", d)
	}
}

func TestReadOnly(t *testing.T) {
	t.Parallel()
	e := setup(t, dashboard.Options{ReadOnly: true})
	code, body := e.do(t, "POST", "/api/v1/queues/q/tasks", "application/json", `{"type":"a"}`)
	wantError(t, code, body, 403)
	if code, _ := e.do(t, "GET", "/api/v1/queues", "", ""); code != 200 {
		t.Fatalf("GET on a read-only dashboard: %d", code)
	}
}

func TestOptionsValidated(t *testing.T) {
	t.Parallel()
	b, err := brisk.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, o := range []dashboard.Options{{MaxBodyBytes: -1}, {BasicAuthPassword: "x"}, {Prefix: "brisk"}, {Prefix: "/brisk/"},
		{AutoscalerURL: "localhost:9090"}, {AutoscalerURL: "ftp://host/"}, {AutoscalerURL: "http://"}} {
		if _, err := dashboard.New(b, o); !errors.Is(err, brisk.ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", o, err)
		}
	}
	if _, err := dashboard.New(nil, dashboard.Options{}); !errors.Is(err, brisk.ErrInvalid) {
		t.Errorf("nil broker: %v", err)
	}
}

func TestWorkers(t *testing.T) {
	t.Parallel()
	e := setup(t, dashboard.Options{})
	w, err := brisk.NewWorker(e.b, brisk.WorkerConfig{Queues: []brisk.QueueSpec{{Name: "five_second"}}, Concurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	var ws []struct {
		ID, Host, Version string
		PID, Concurrency  int
		Queues            []string
		LastSeen          *string `json:"last_seen"`
	}
	for deadline := time.Now().Add(10 * time.Second); len(ws) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no worker listed after 10s")
		}
		_, body := e.do(t, "GET", "/api/v1/workers", "", "")
		if err := json.Unmarshal([]byte(body), &ws); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
	}
	if ws[0].ID != w.ID() || ws[0].Concurrency != 3 || ws[0].PID == 0 || ws[0].Version != brisk.Version ||
		len(ws[0].Queues) != 1 || ws[0].Queues[0] != "five_second" || ws[0].LastSeen == nil {
		t.Errorf("worker: %+v", ws[0])
	}
	code, page := e.do(t, "GET", "/workers", "", "")
	if code != 200 || !strings.Contains(page, `data-worker="`+w.ID()+`"`) || !strings.Contains(page, ws[0].Host) {
		t.Errorf("workers page: %d\n%s", code, page)
	}
}
