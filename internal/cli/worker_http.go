package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/internal/apiv1"
)

// httpHandler is the handler of "brisk worker --http": it POSTs each task to one URL and
// reads the outcome from the status code. It implements brisk.Handler.
type httpHandler struct {
	url     string
	headers http.Header
	client  *http.Client
	log     *slog.Logger
}

// newHTTPHandler checks the URL and the extra headers ("K: V").
func newHTTPHandler(rawURL string, headers []string, log *slog.Logger) (*httpHandler, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("--http %q is not an http:// or https:// URL", rawURL)
	}
	h := &httpHandler{url: rawURL, headers: http.Header{}}
	for _, kv := range headers {
		k, v, found := strings.Cut(kv, ":")
		if !found || strings.TrimSpace(k) == "" {
			return nil, usagef("--header %q is not \"Name: value\"", kv)
		}
		h.headers.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256 // one kept-alive connection per concurrent task
	h.client = &http.Client{
		Transport: tr,
		// A redirect is answered as a failure (retried): POSTs are not replayed elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return h, nil
}

// ProcessTask POSTs the task; the request ends with the task's context (its timeout).
func (h *httpHandler) ProcessTask(ctx context.Context, t *brisk.Task) error {
	deadline, _ := ctx.Deadline()
	d := apiv1.FromDelivery(t, deadline)
	body, err := json.Marshal(d)
	if err != nil {
		return brisk.SkipRetry(fmt.Errorf("encode the task: %w", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return brisk.SkipRetry(err)
	}
	for k, vs := range h.headers {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Brisk-Task-Id", t.ID)
	req.Header.Set("Brisk-Attempt", strconv.Itoa(t.Attempt))
	req.Header.Set("Brisk-Max-Attempts", strconv.Itoa(t.MaxAttempts))
	req.Header.Set("Brisk-Queue", t.Queue)
	req.Header.Set("Brisk-Task-Type", t.Type)
	if d.Deadline != nil {
		req.Header.Set("Brisk-Deadline", *d.Deadline)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", h.url, err) // retried with backoff
	}
	defer resp.Body.Close()
	if err := statusError(resp.StatusCode, resp.Header.Get("Retry-After"), nil, time.Now()); err == nil {
		mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if mt == "application/x-ndjson" {
			return h.readLines(ctx, t, resp.Body)
		}
		// Done: a JSON body is the task's result, kept where the task has a retention.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, brisk.MaxResult+1))
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		if mt == "application/json" && len(bytes.TrimSpace(body)) > 0 {
			keepResult(ctx, h.log, t.ID, body, false)
		}
		return nil
	}
	// Read a little of the body for the error message, and drain it so that the
	// connection is kept alive.
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return statusError(resp.StatusCode, resp.Header.Get("Retry-After"), snippet, time.Now())
}

// readLines reads a streamed response (application/x-ndjson): the lines an --exec child
// writes for one task, as they come. Progress lines are reported while the request runs;
// the outcome line decides the task. A line that is not the task's (bad JSON, another id,
// an unknown status), or a body that ends without an outcome, fails the attempt (retried
// with backoff), as does the task's deadline.
func (h *httpHandler) readLines(ctx context.Context, t *brisk.Task, body io.Reader) error {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 4096), brisk.MaxResult+64<<10)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		out, err := parseOutcome(line, t.ID)
		if err != nil {
			return fmt.Errorf("POST %s: %w", h.url, err)
		}
		if out.Progress != nil {
			reportProgress(ctx, h.log, t.ID, *out.Progress)
		}
		if out.Status == "" {
			continue // a progress line: the outcome follows
		}
		if out.Status == apiv1.OutcomeOK && len(out.Result) > 0 {
			keepResult(ctx, h.log, t.ID, out.Result, true)
		}
		return outcomeError(out)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("POST %s: reading the streamed response: %w", h.url, err)
	}
	return fmt.Errorf("POST %s: the streamed response ended without an outcome line", h.url)
}

// statusError is the handler error that a response status stands for: nil for 2xx, a
// retry at Retry-After for 429 and 503 that carry one, dead at once for other 4xx, a
// retry with backoff otherwise.
func statusError(code int, retryAfter string, body []byte, now time.Time) error {
	if code >= 200 && code < 300 {
		return nil
	}
	msg := fmt.Sprintf("HTTP %d %s", code, http.StatusText(code))
	if b := strings.TrimSpace(string(body)); b != "" {
		msg += ": " + truncate(b, 200)
	}
	err := errors.New(msg)
	switch {
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		if d, ok := parseRetryAfter(retryAfter, now); ok {
			return brisk.RetryAfter(d, err)
		}
		return err
	case code >= 400 && code < 500:
		return brisk.SkipRetry(err)
	}
	return err
}

// parseRetryAfter reads a Retry-After header: seconds, or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 && s < 1e9 {
		return time.Duration(s * float64(time.Second)), true
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(0, at.Sub(now)), true
	}
	return 0, false
}

// Close closes idle connections.
func (h *httpHandler) Close() { h.client.CloseIdleConnections() }
