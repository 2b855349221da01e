// Package dashboard serves brisk's web dashboard and its JSON HTTP API (/api/v1) as one
// http.Handler that works with any broker.
//
// Mount it in your own server under a prefix with http.StripPrefix, setting Options.Prefix
// to the same path so that the pages link to themselves correctly, and Options.Hosts to
// the names your server is reached by (the dashboard checks the Host header against DNS
// rebinding):
//
//	d, err := dashboard.New(b, dashboard.Options{Prefix: "/brisk", Token: secret, Hosts: []string{"ops.example.com"}})
//	defer d.Close() // stops the sampler
//	mux.Handle("/brisk/", http.StripPrefix("/brisk", d))
//
// It also serves every queue's statistics for Prometheus at /metrics (read from the broker
// at each scrape; the same authentication applies). Pausing and resuming a queue is
// offered for brokers that can pause queues; cancelling tasks, periodic schedules (with
// their last and next runs and the scheduler's leader) and rate and concurrency limits for
// brokers that keep them. The samples behind the charts and rates are kept in the broker
// where it can keep them (SQLite, Redis), so that every dashboard on a store shows the
// same last hour.
package dashboard

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/briskq/brisk"
)

// DefaultMaxBodyBytes is the default limit on a request body: the default payload limit of
// the brokers (1 MiB) plus room for the JSON around it.
const DefaultMaxBodyBytes = 1<<20 + 64<<10

// Options configures the dashboard. The zero value serves everything without
// authentication, which is only safe on a loopback address.
type Options struct {
	// Token, when set, is required on every request: as "Authorization: Bearer TOKEN", or
	// for pages as "?token=TOKEN" once (the dashboard then keeps it in an HttpOnly,
	// SameSite=Strict cookie).
	Token string
	// BasicAuthUser and BasicAuthPassword, when the user is set, are accepted on every
	// request as HTTP basic authentication (alone or as an alternative to Token).
	BasicAuthUser, BasicAuthPassword string
	// ReadOnly refuses every state-changing request (enqueue, retry, delete) with 403 and
	// hides the buttons.
	ReadOnly bool
	// Logger receives errors of the broker. Default: slog.Default().
	Logger *slog.Logger
	// MaxBodyBytes limits request bodies; larger ones get 413. Default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Prefix is the path the handler is mounted under with http.StripPrefix ("/brisk"),
	// used in the links of pages. Default "" (mounted at the root).
	Prefix string
	// SampleInterval is how often the sampler records each queue's latency and counters
	// for the charts and throughput. Default 5s.
	SampleInterval time.Duration
	// AutoscalerURL, when set, is the base URL of a running autoscaler's metrics server
	// ("http://127.0.0.1:9090", as given to brisk autoscale --metrics): the sampler reads
	// its GET /decisions at every sample (with a short timeout; a failure is logged once
	// and ignored) and the queue pages draw the last hour's decisions on the latency chart.
	AutoscalerURL string
	// Context bounds the sampler goroutine: it stops when Context is done, or at Close,
	// whichever comes first. Default context.Background() (until Close).
	Context context.Context
	// Hosts lists the names the dashboard is reached by, besides loopback ones: "host"
	// (any port) or "host:port". A request whose Host header is not loopback on the
	// listening port or one of these gets 421 (Misdirected Request), which defeats DNS
	// rebinding: a page of another site whose name is made to point at 127.0.0.1 sends
	// its own name as Host. Without Token or basic authentication only loopback names
	// and these are served; with them and no Hosts, any name is (the credentials are
	// the defence, since a rebound page cannot send them).
	Hosts []string
}

// handler is the dashboard.
type handler struct {
	b        brisk.Broker
	in       *brisk.Inspector
	client   *brisk.Client
	opts     Options
	log      *slog.Logger
	csrfKey  []byte
	mux      *http.ServeMux
	sampler  *sampler
	pages    *pageTemplates
	basePath string
}

// Validate reports options New refuses, with an error wrapping brisk.ErrInvalid that
// names the field.
func (o Options) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: dashboard: %s", brisk.ErrInvalid, fmt.Sprintf(format, args...))
	}
	switch {
	case o.MaxBodyBytes < 0:
		return bad("Options.MaxBodyBytes %d is negative", o.MaxBodyBytes)
	case o.SampleInterval < 0:
		return bad("Options.SampleInterval %s is negative", o.SampleInterval)
	case o.BasicAuthUser == "" && o.BasicAuthPassword != "":
		return bad("Options.BasicAuthPassword set without BasicAuthUser")
	case o.Prefix != "" && (!strings.HasPrefix(o.Prefix, "/") || strings.HasSuffix(o.Prefix, "/")):
		return bad("Options.Prefix %q must start with / and not end with one", o.Prefix)
	}
	for _, h := range o.Hosts {
		if err := validHost(h); err != nil {
			return bad("Options.Hosts: %q %v", h, err)
		}
	}
	if o.AutoscalerURL != "" {
		u, err := url.Parse(o.AutoscalerURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("Options.AutoscalerURL %q is not an http(s) URL", o.AutoscalerURL)
		}
	}
	return nil
}

// Dashboard is the web dashboard and JSON API of one broker, an http.Handler. Its sampler
// runs from New until Close (or until Options.Context is done).
type Dashboard struct {
	h      *handler
	cancel context.CancelFunc
	done   chan struct{}
}

// ServeHTTP serves the pages, the API, the static files and /metrics.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) { d.h.ServeHTTP(w, r) }

// Close stops the sampler and waits for it to return. It is idempotent. The handler still
// serves afterwards, without new samples.
func (d *Dashboard) Close() error {
	d.cancel()
	<-d.done
	return nil
}

// New returns the dashboard and API of broker b, and starts the sampler that records every
// queue's latency and counters for the charts and rates: in the broker when it keeps
// samples (see Inspector.AddSamples), so that every dashboard on the store shows the same
// last hour, else in memory. Close stops it.
func New(b brisk.Broker, opts Options) (*Dashboard, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: dashboard: nil broker", brisk.ErrInvalid)
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.SampleInterval == 0 {
		opts.SampleInterval = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Context == nil {
		opts.Context = context.Background()
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("dashboard: csrf key: %w", err)
	}
	pages, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	h := &handler{
		b: b, in: brisk.NewInspector(b), client: brisk.NewClient(b), opts: opts, log: opts.Logger,
		csrfKey: key, mux: http.NewServeMux(), pages: pages, basePath: opts.Prefix,
	}
	h.sampler = newSampler(h.in, opts.SampleInterval, time.Hour, opts.Logger)
	if opts.AutoscalerURL != "" {
		h.sampler.decisionsURL = decisionsEndpoint(opts.AutoscalerURL)
	}
	ctx, cancel := context.WithCancel(opts.Context)
	d := &Dashboard{h: h, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		h.sampler.run(ctx)
	}()
	h.routes()
	return d, nil
}

func (h *handler) routes() {
	m := h.mux
	// JSON API.
	m.HandleFunc("GET /api/v1/queues", h.apiQueues)
	m.HandleFunc("GET /api/v1/queues/{queue}/tasks", h.apiTasks)
	m.HandleFunc("POST /api/v1/queues/{queue}/tasks", h.apiEnqueue)
	m.HandleFunc("POST /api/v1/queues/{queue}/dead/retry", h.apiDead(true))
	m.HandleFunc("POST /api/v1/queues/{queue}/dead/delete", h.apiDead(false))
	m.HandleFunc("POST /api/v1/queues/{queue}/pause", h.apiPause(true))
	m.HandleFunc("POST /api/v1/queues/{queue}/resume", h.apiPause(false))
	m.HandleFunc("PUT /api/v1/queues/{queue}", h.apiPutQueue)
	m.HandleFunc("POST /api/v1/tasks/batch", h.apiEnqueueBatch)
	m.HandleFunc("GET /api/v1/tasks/{id}", h.apiTask)
	m.HandleFunc("GET /api/v1/workers", h.apiWorkers)
	m.HandleFunc("POST /api/v1/queues/{queue}/delete", h.apiDeleteQueue)
	h.schedRoutes(m)
	m.HandleFunc("/api/", h.apiNoRoute)
	// Pages.
	m.HandleFunc("GET /{$}", h.pageQueues)
	m.HandleFunc("GET /queues/{queue}", h.pageQueue)
	m.HandleFunc("GET /tasks/{id}", h.pageTask)
	m.HandleFunc("GET /workers", h.pageWorkers)
	m.HandleFunc("POST /queues/{queue}/dead/retry", h.formDead(true))
	m.HandleFunc("POST /queues/{queue}/dead/delete", h.formDead(false))
	m.HandleFunc("POST /queues/{queue}/pause", h.formPause(true))
	m.HandleFunc("POST /queues/{queue}/resume", h.formPause(false))
	m.Handle("GET /static/", http.StripPrefix("/static/", staticHandler()))
	// Prometheus.
	m.Handle("GET /metrics", metricsHandler(h.in, h.log))
}

// ServeHTTP applies the security checks every request goes through, then routes it.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "same-origin")
	hdr.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	isAPI := strings.HasPrefix(r.URL.Path, "/api/")
	fail := func(status int, msg string) {
		if isAPI {
			writeError(w, status, msg)
			return
		}
		http.Error(w, msg, status)
	}

	if msg := h.misdirected(r); msg != "" {
		fail(http.StatusMisdirectedRequest, msg)
		return
	}
	if h.tokenInURL(w, r) {
		return
	}
	if !h.authenticate(r) {
		if h.opts.BasicAuthUser != "" {
			hdr.Set("WWW-Authenticate", `Basic realm="brisk dashboard", charset="UTF-8"`)
		} else {
			hdr.Set("WWW-Authenticate", `Bearer realm="brisk dashboard"`)
		}
		fail(http.StatusUnauthorized, "authentication required")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if !changesState(r.Method) {
			hdr.Set("Allow", "GET, HEAD, POST, PUT")
			fail(http.StatusMethodNotAllowed, "method "+r.Method+" not allowed")
			return
		}
		if msg := crossOrigin(r); msg != "" {
			fail(http.StatusForbidden, msg)
			return
		}
		if h.opts.ReadOnly {
			fail(http.StatusForbidden, "the dashboard is read-only")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes)
		if r.ContentLength > h.opts.MaxBodyBytes {
			fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", h.opts.MaxBodyBytes))
			return
		}
	}
	h.mux.ServeHTTP(w, r)
}

// changesState reports whether method is one the API takes for a change (POST, and PUT
// for a queue's settings); such requests get the origin, read-only and size checks.
func changesState(method string) bool {
	return method == http.MethodPost || method == http.MethodPut
}

const tokenCookie = "brisk_dashboard_token"

// authenticate reports whether r carries the configured credentials (always true when
// none is configured): the Authorization header (a bearer token or basic authentication)
// on every route; on pages and static files also the cookie that tokenInURL set.
func (h *handler) authenticate(r *http.Request) bool {
	if h.opts.Token == "" && h.opts.BasicAuthUser == "" {
		return true
	}
	if h.opts.BasicAuthUser != "" {
		if u, p, ok := r.BasicAuth(); ok && equal(u, h.opts.BasicAuthUser) && equal(p, h.opts.BasicAuthPassword) {
			return true
		}
	}
	if h.opts.Token == "" {
		return false
	}
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return equal(strings.TrimSpace(a[7:]), h.opts.Token)
	}
	if c, err := r.Cookie(tokenCookie); err == nil && browserRoute(r.URL.Path) && equal(c.Value, h.opts.Token) {
		return true
	}
	return false
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// crossOrigin returns why a state-changing request looks cross-site, or "". Browsers send
// Origin (or at least Referer) on every POST; clients that send neither (curl, scripts)
// are not browsers and cannot be driven by another site.
func crossOrigin(r *http.Request) string {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return "cross-site request refused"
	}
	src, what := r.Header.Get("Origin"), "Origin"
	if src == "" {
		src, what = r.Header.Get("Referer"), "Referer"
	}
	if src == "" {
		return ""
	}
	u, err := url.Parse(src)
	if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
		return fmt.Sprintf("cross-origin request refused (%s %q is not this host %q)", what, src, r.Host)
	}
	return ""
}

// csrfToken is the token the forms carry: an HMAC, under a per-process random key, of who
// is logged in, so a token is worthless to another user or after a restart.
func (h *handler) csrfToken(r *http.Request) string {
	who := "anonymous"
	if u, _, ok := r.BasicAuth(); ok {
		who = "basic:" + u
	} else if h.opts.Token != "" {
		who = "token"
	}
	m := hmac.New(sha256.New, h.csrfKey)
	m.Write([]byte("brisk-dashboard-csrf\x00" + who))
	return hex.EncodeToString(m.Sum(nil))
}

func (h *handler) checkCSRF(r *http.Request) bool {
	got := r.PostForm.Get("csrf")
	return got != "" && hmac.Equal([]byte(got), []byte(h.csrfToken(r)))
}

// bodyTooLarge reports whether err came from the MaxBytesReader.
func bodyTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}
