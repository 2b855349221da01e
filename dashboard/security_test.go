package dashboard_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/dashboard"
)

// noRedirect is an HTTP client that returns redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// send sends req with the test server's client rules (no redirects followed) and returns
// the response with its body read.
func send(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp, sb.String()
}

// get builds a GET of path on e's server with the Host header host ("" keeps the server's).
func (e *env) get(t *testing.T, path, host string, hdr ...string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("GET", e.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return req
}

func (e *env) port(t *testing.T) string {
	t.Helper()
	_, port, err := net.SplitHostPort(strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// TestHostChecked checks the defence against DNS rebinding: without credentials the
// dashboard answers only to loopback names and addresses on its own port, so a page of
// another site whose name was rebound to 127.0.0.1 (it sends Host: evil.example) reads
// and changes nothing; with credentials and Options.Hosts, only those names and loopback.
func TestHostChecked(t *testing.T) {
	t.Parallel()
	e := setup(t, dashboard.Options{})
	port := e.port(t)
	for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port, "LOCALHOST:" + port, "[::1]:" + port, "app.localhost:" + port} {
		if resp, body := send(t, e.get(t, "/api/v1/queues", host)); resp.StatusCode != 200 {
			t.Errorf("Host %s: %d %s, want 200", host, resp.StatusCode, body)
		}
	}
	for _, host := range []string{"evil.example", "evil.example:" + port, "127.0.0.1:1", "localhost", "127.0.0.1.evil.example:" + port, "10.0.0.1:" + port} {
		for _, path := range []string{"/api/v1/queues", "/", "/metrics", "/static/app.js"} {
			resp, body := send(t, e.get(t, path, host))
			if resp.StatusCode != http.StatusMisdirectedRequest || !strings.Contains(body, "--host") {
				t.Errorf("GET %s with Host %s: %d %s, want 421 naming --host", path, host, resp.StatusCode, body)
			}
		}
	}
	// A rebound page's POST: same Origin and Host, both the attacker's.
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/queues/q/tasks", strings.NewReader(`{"type":"a"}`))
	req.Host = "evil.example:" + port
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "http://evil.example:"+port)
	if resp, body := send(t, req); resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("rebound POST: %d %s, want 421", resp.StatusCode, body)
	}
	if qs, err := brisk.NewInspector(e.b).Queues(context.Background()); err != nil || len(qs) != 0 {
		t.Errorf("queues after the rebound POST: %v, %v; want none", qs, err)
	}

	// With credentials and an allow-list: the names listed (with or without the port they
	// name) and loopback.
	a := setup(t, dashboard.Options{Token: "s3cret", Hosts: []string{"brisk.example.com", "ops.example.com:8443"}})
	auth := []string{"Authorization", "Bearer s3cret"}
	for host, want := range map[string]int{
		"brisk.example.com": 200, "brisk.example.com:443": 200, "BRISK.example.com": 200,
		"ops.example.com:8443": 200, "ops.example.com": 421, "other.example": 421,
		"127.0.0.1:" + a.port(t): 200,
	} {
		if resp, body := send(t, a.get(t, "/api/v1/queues", host, auth...)); resp.StatusCode != want {
			t.Errorf("Host %s with a token and an allow-list: %d %s, want %d", host, resp.StatusCode, body, want)
		}
	}
	// With credentials and no allow-list, any name: the credentials are the defence.
	c := setup(t, dashboard.Options{Token: "s3cret"})
	if resp, body := send(t, c.get(t, "/api/v1/queues", "brisk.example.com", auth...)); resp.StatusCode != 200 {
		t.Errorf("any Host with a token and no allow-list: %d %s, want 200", resp.StatusCode, body)
	}
	if _, err := dashboard.New(e.b, dashboard.Options{Hosts: []string{"bad host/"}}); err == nil {
		t.Errorf("Options.Hosts with an invalid name was accepted")
	}
}

// TestTokenOnlyOnceInURL checks that ?token= is taken only on a page, once: the dashboard
// sets its cookie and redirects to the same URL without the token (so that it stays out
// of the history, the logs and the polling); /metrics, static files and the API take the
// Authorization header only.
func TestTokenOnlyOnceInURL(t *testing.T) {
	t.Parallel()
	e := setup(t, dashboard.Options{Token: "s3cret", Prefix: ""})
	resp, body := send(t, e.get(t, "/queues/q?state=dead&token=s3cret&limit=5", ""))
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		cookie = c
	}
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/queues/q?limit=5&state=dead" ||
		cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("page with ?token=: %d, Location %q, cookie %+v, body %s; want 303 to the URL without the token and the cookie",
			resp.StatusCode, resp.Header.Get("Location"), cookie, body)
	}
	withCookie := func(path string) int {
		req := e.get(t, path, "")
		req.AddCookie(cookie)
		resp, _ := send(t, req)
		return resp.StatusCode
	}
	if code := withCookie("/?fragment=1"); code != 200 {
		t.Errorf("page with the cookie: %d, want 200", code)
	}
	if code := withCookie("/static/app.js"); code != 200 {
		t.Errorf("static file with the cookie: %d, want 200", code)
	}
	for _, path := range []string{"/metrics", "/api/v1/queues"} {
		if code := withCookie(path); code != 401 {
			t.Errorf("%s with the cookie alone: %d, want 401 (Authorization only)", path, code)
		}
	}
	for _, path := range []string{"/metrics?token=s3cret", "/static/app.js?token=s3cret", "/api/v1/queues?token=s3cret"} {
		if resp, _ := send(t, e.get(t, path, "")); resp.StatusCode != 401 {
			t.Errorf("%s: %d, want 401 (?token= is for pages)", path, resp.StatusCode)
		}
	}
	if resp, _ := send(t, e.get(t, "/metrics", "", "Authorization", "Bearer s3cret")); resp.StatusCode != 200 {
		t.Errorf("/metrics with the bearer token: %d, want 200", resp.StatusCode)
	}
	if resp, _ := send(t, e.get(t, "/?token=wrong", "")); resp.StatusCode != 401 || len(resp.Cookies()) != 0 {
		t.Errorf("page with a wrong ?token=: %d, cookies %v; want 401 and none", resp.StatusCode, resp.Cookies())
	}

	// Mounted under a prefix, the redirect keeps it.
	p := setup(t, dashboard.Options{Token: "s3cret", Prefix: "/brisk"})
	if resp, _ := send(t, p.get(t, "/?token=s3cret", "")); resp.Header.Get("Location") != "/brisk/" {
		t.Errorf("redirect under the prefix /brisk: Location %q, want /brisk/", resp.Header.Get("Location"))
	}
}

// TestInvalidUTF8Refused checks that a payload with invalid UTF-8 is refused with 400 and
// nothing stored, and that a task stored with such a payload through the Go API is served
// as valid JSON (base64), never as a broken JSON document.
func TestInvalidUTF8Refused(t *testing.T) {
	t.Parallel()
	e := setup(t, dashboard.Options{})
	code, body := e.do(t, "POST", "/api/v1/queues/q/tasks", "application/json", "{\"type\":\"a\",\"payload\":{\"s\":\"\xff\xfe\"}}")
	wantError(t, code, body, 400)
	if !strings.Contains(body, "UTF-8") {
		t.Errorf("error %s does not say UTF-8", body)
	}
	if qs, err := brisk.NewInspector(e.b).Queues(context.Background()); err != nil || len(qs) != 0 {
		t.Errorf("queues after the refused enqueue: %v, %v", qs, err)
	}
	id, err := e.client.Enqueue(context.Background(), brisk.NewTask("a", []byte("{\"s\":\"\xff\"}"), brisk.InQueue("q")))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/api/v1/tasks/" + id, "/api/v1/queues/q/tasks"} {
		code, body := e.do(t, "GET", path, "", "")
		if code != 200 || !json.Valid([]byte(body)) || !strings.Contains(body, `"payload_base64"`) {
			t.Errorf("GET %s of a task with invalid UTF-8: %d, valid JSON %v: %s", path, code, json.Valid([]byte(body)), body)
		}
	}
}

// TestDelayBound checks that the API refuses a delay past brisk.MaxScheduleAhead with the
// rule the Go API and the CLI state.
func TestDelayBound(t *testing.T) {
	t.Parallel()
	e := setup(t, dashboard.Options{})
	over := strconv.FormatFloat(brisk.MaxScheduleAhead.Seconds()+60, 'f', -1, 64)
	for _, d := range []string{over, "1e300"} {
		code, body := e.do(t, "POST", "/api/v1/queues/q/tasks", "application/json", `{"type":"a","delay_seconds":`+d+`}`)
		wantError(t, code, body, 400)
		if !strings.Contains(body, brisk.ScheduleAheadRule) {
			t.Errorf("delay_seconds %s: %s, want the rule %q", d, body, brisk.ScheduleAheadRule)
		}
	}
	within := strconv.FormatFloat(brisk.MaxScheduleAhead.Seconds()-60, 'f', -1, 64)
	e.enqueue(t, "q", `{"type":"a","delay_seconds":`+within+`}`)
}

// TestMethodNotAllowed checks that a route that exists for another method answers 405
// with Allow, on the API as on the pages, and that no route at all is 404.
func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	e := setup(t, dashboard.Options{})
	for path, allow := range map[string]string{
		"/api/v1/queues/q/dead/retry": "POST",
		"/api/v1/queues/q/pause":      "POST",
		"/api/v1/queues/q/delete":     "POST",
		"/queues/q/dead/retry":        "POST",
	} {
		resp, body := send(t, e.get(t, path, ""))
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != allow {
			t.Errorf("GET %s: %d, Allow %q, %s; want 405 with Allow %q", path, resp.StatusCode, resp.Header.Get("Allow"), body, allow)
		}
		if strings.HasPrefix(path, "/api/") {
			wantError(t, resp.StatusCode, body, 405)
		}
	}
	code, body := e.do(t, "POST", "/api/v1/queues", "application/json", "{}")
	wantError(t, code, body, 405)
	code, body = e.do(t, "GET", "/api/v1/nope", "", "")
	wantError(t, code, body, 404)
}

// TestPagesWhileBrokerDown checks that the pages, like the API, answer 503 while the
// broker cannot be reached (here: closed under the dashboard).
func TestPagesWhileBrokerDown(t *testing.T) {
	t.Parallel()
	e := setup(t, dashboard.Options{})
	e.enqueue(t, "q", `{"type":"a"}`)
	e.b.Close()
	for _, path := range []string{"/", "/queues/q", "/workers", "/api/v1/queues"} {
		if code, body := e.do(t, "GET", path, "", ""); code != 503 {
			t.Errorf("GET %s while the broker is down: %d %s, want 503", path, code, body)
		}
	}
}

// TestCloseStopsSampler checks that a dashboard made without Options.Context leaves no
// goroutine behind once closed. It does not run in parallel, so that goleak sees only its
// own goroutines.
func TestCloseStopsSampler(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	b, err := brisk.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	d, err := dashboard.New(b, dashboard.Options{SampleInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	b.Close()
	goleak.VerifyNone(t, ignore)
}

// TestQueueDeleteAPI checks POST /api/v1/queues/{queue}/delete: an empty queue goes (200),
// one with tasks stays (409), an unknown one is 404.
func TestQueueDeleteAPI(t *testing.T) {
	t.Parallel()
	e := setup(t, dashboard.Options{})
	if err := e.client.DeclareQueue(context.Background(), "empty", 0); err != nil {
		t.Fatal(err)
	}
	e.enqueue(t, "full", `{"type":"a"}`)
	code, body := e.do(t, "POST", "/api/v1/queues/empty/delete", "application/json", "")
	if code != 200 || !strings.Contains(body, `"deleted":true`) {
		t.Errorf("delete of an empty queue: %d %s", code, body)
	}
	code, body = e.do(t, "POST", "/api/v1/queues/full/delete", "application/json", "")
	wantError(t, code, body, 409)
	code, body = e.do(t, "POST", "/api/v1/queues/empty/delete", "application/json", "")
	wantError(t, code, body, 404)
	if q := e.queueJSON(t, "full"); q == nil {
		t.Errorf("queue full is gone after a refused delete")
	}
	r := setup(t, dashboard.Options{ReadOnly: true})
	code, body = r.do(t, "POST", "/api/v1/queues/x/delete", "application/json", "")
	wantError(t, code, body, 403)
}
