package dashboard

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/internal/humanize"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

func staticHandler() http.Handler {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.FileServerFS(sub)
}

// pageTemplates holds one template set per page, each built on layout.html.
type pageTemplates struct{ byName map[string]*template.Template }

var funcs = template.FuncMap{
	"path": url.PathEscape,
	"dur":  humanize.Duration,
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05.000 UTC")
	},
}

func parseTemplates() (*pageTemplates, error) {
	p := &pageTemplates{byName: map[string]*template.Template{}}
	for _, name := range []string{"queues", "queue", "task", "workers", "periodic"} {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("dashboard: parse templates: %w", err)
		}
		p.byName[name] = t
	}
	return p, nil
}

// page is what every template receives.
type page struct {
	Title     string
	Base      string // the mount prefix, for links
	CSRF      string
	ReadOnly  bool
	CanPause  bool // the broker can pause queues (and the dashboard is not read-only)
	CanCancel bool // the broker can cancel tasks (and the dashboard is not read-only)
	Now       time.Time
	Data      any
}

// render executes page name, or only its "live" block when the page's polling script asks
// for it (?fragment=1), into a buffer first so an error never sends half a page.
func (h *handler) render(w http.ResponseWriter, r *http.Request, name, title string, data any) {
	p := page{Title: title, Base: h.basePath, CSRF: h.csrfToken(r), ReadOnly: h.opts.ReadOnly, CanPause: h.in.CanPause() && !h.opts.ReadOnly,
		CanCancel: h.in.CanCancel() && !h.opts.ReadOnly, Now: time.Now(), Data: data}
	tmpl := "layout"
	if r.URL.Query().Get("fragment") == "1" {
		tmpl = "live"
	}
	var buf bytes.Buffer
	if err := h.pages.byName[name].ExecuteTemplate(&buf, tmpl, p); err != nil {
		h.log.Error("brisk dashboard: render", "page", name, "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
}

func (h *handler) pageError(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, brisk.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, brisk.ErrUnsupported): // a button of a capability the broker lacks
		status = http.StatusNotImplemented
	case errors.Is(err, brisk.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, brisk.ErrUnavailable), errors.Is(err, brisk.ErrClosed):
		// Like the API: the broker is down, the dashboard is not.
		status = http.StatusServiceUnavailable
		h.log.Error("brisk dashboard: broker", "path", r.URL.Path, "err", err)
	default:
		h.log.Error("brisk dashboard: broker", "path", r.URL.Path, "err", err)
	}
	http.Error(w, message(err), status)
}

// queueRow is one line of the queues page.
type queueRow struct {
	brisk.QueueInfo
	Status     string // ok, warn (above 80% of the SLA), over, none (no SLA)
	SLAPercent int
	Throughput string // completed per minute over the last 5 minutes
	Failures   string // failed attempts per minute over the last 5 minutes
}

func status(q brisk.QueueInfo) (string, int) {
	if q.SLA <= 0 {
		return "none", 0
	}
	pct := int(100 * q.Latency.Seconds() / q.SLA.Seconds())
	switch {
	case !brisk.WithinSLA(q):
		return "over", pct
	case q.Latency*5 > q.SLA*4:
		return "warn", pct
	}
	return "ok", pct
}

const rateWindow = 5 * time.Minute

func (h *handler) queueRow(q brisk.QueueInfo, now time.Time) queueRow {
	row := queueRow{QueueInfo: q, Throughput: "–", Failures: "–"}
	row.Status, row.SLAPercent = status(q)
	if c, f, ok := h.sampler.rates(q, now, rateWindow); ok {
		row.Throughput, row.Failures = fmt.Sprintf("%.1f/min", c), fmt.Sprintf("%.1f/min", f)
	}
	return row
}

type queuesData struct {
	Rows              []queueRow
	Over, Pending     int64
	Running, Dead     int64
	TotalQueues       int
	OverSLA, NearSLA  int
	RateWindowMinutes int
}

func (h *handler) pageQueues(w http.ResponseWriter, r *http.Request) {
	qs, err := h.in.Queues(r.Context())
	if err != nil {
		h.pageError(w, r, err)
		return
	}
	now := time.Now()
	d := queuesData{Rows: make([]queueRow, 0, len(qs)), TotalQueues: len(qs), RateWindowMinutes: int(rateWindow / time.Minute)}
	for _, q := range qs {
		row := h.queueRow(q, now)
		d.Rows = append(d.Rows, row)
		d.Pending += q.Pending
		d.Running += q.Running
		d.Dead += q.Dead
		switch row.Status {
		case "over":
			d.OverSLA++
		case "warn":
			d.NearSLA++
		}
	}
	h.render(w, r, "queues", "Queues", d)
}

type queueData struct {
	Row       queueRow
	Chart     template.HTML
	State     string
	States    []string
	Tasks     []taskRow
	Offset    int
	Limit     int
	NextPage  int
	PrevPage  int
	HasPrev   bool
	HasNext   bool
	ListTitle string
	// Unsupported says why this broker cannot list the tasks of this state (RabbitMQ lists
	// only dead tasks; a broker that watches another system's queues may list none): the
	// page shows the queue without them.
	Unsupported string
}

type taskRow struct {
	*brisk.TaskInfo
	PayloadShort string
	ResultShort  string // completed tasks
}

func (h *handler) pageQueue(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("queue")
	state, limit, offset, err := listParams(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if r.URL.Query().Get("limit") == "" {
		limit = 50
	}
	qs, err := h.in.Queues(r.Context())
	if err != nil {
		h.pageError(w, r, err)
		return
	}
	var q *brisk.QueueInfo
	for i := range qs {
		if qs[i].Name == name {
			q = &qs[i]
		}
	}
	if q == nil {
		http.Error(w, "no queue named "+name, http.StatusNotFound)
		return
	}
	ts, err := h.in.Tasks(r.Context(), name, state, limit, offset)
	unsupported := ""
	if errors.Is(err, brisk.ErrUnsupported) {
		unsupported, err = message(err), nil // the page says so instead of listing nothing
	}
	if err != nil {
		h.pageError(w, r, err)
		return
	}
	now := time.Now()
	d := queueData{
		Row: h.queueRow(*q, now), Chart: latencyChart(append(h.sampler.series(name), sample{at: now, latency: q.Latency}), q.SLA,
			h.sampler.decisionsOf(name), now, time.Hour),
		State: string(state), States: []string{"pending", "scheduled", "running", "dead", "cancelled", "completed"},
		Offset: offset, Limit: limit, HasPrev: offset > 0, PrevPage: max(0, offset-limit),
		HasNext: len(ts) == limit, NextPage: offset + limit, Unsupported: unsupported,
	}
	for _, t := range ts {
		d.Tasks = append(d.Tasks, taskRow{TaskInfo: t, PayloadShort: truncate(payloadText(t.Payload), 80),
			ResultShort: truncate(payloadText(t.Result), 80)})
	}
	h.render(w, r, "queue", "Queue "+name, d)
}

type taskData struct {
	Task    *brisk.TaskInfo
	Payload string
	Result  string // "" when the task has none
	Timeout string
}

func (h *handler) pageTask(w http.ResponseWriter, r *http.Request) {
	t, err := h.in.Task(r.Context(), r.PathValue("id"))
	if err != nil {
		h.pageError(w, r, err)
		return
	}
	d := taskData{Task: t, Payload: payloadPretty(t.Payload), Timeout: "worker default"}
	if t.Result != nil {
		d.Result = payloadPretty(t.Result)
	}
	if t.Timeout > 0 {
		d.Timeout = t.Timeout.String()
	}
	h.render(w, r, "task", "Task "+t.ID, d)
}

func (h *handler) pageWorkers(w http.ResponseWriter, r *http.Request) {
	ws, err := h.in.Workers(r.Context())
	if err != nil {
		h.pageError(w, r, err)
		return
	}
	h.render(w, r, "workers", "Workers", ws)
}

// formDead handles the retry and delete buttons of the pages: form fields csrf, id (one
// or more) or all=1, and next (where to go back to).
func (h *handler) formDead(retry bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !h.parseForm(w, r) {
			return
		}
		ids := r.PostForm["id"]
		all := r.PostForm.Get("all") == "1"
		if all == (len(ids) > 0) {
			http.Error(w, "give task ids or all=1, not both", http.StatusBadRequest)
			return
		}
		if _, err := h.deadAction(r, retry, ids); err != nil {
			h.pageError(w, r, err)
			return
		}
		next := localPath(r.PostForm.Get("next"), "/queues/"+url.PathEscape(r.PathValue("queue"))+"?state=dead")
		http.Redirect(w, r, h.basePath+next, http.StatusSeeOther)
	}
}

// parseForm parses a page's POST form and checks its CSRF token; on failure it has answered
// the request and returns false.
func (h *handler) parseForm(w http.ResponseWriter, r *http.Request) bool {
	if err := r.ParseForm(); err != nil {
		if bodyTooLarge(err) {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return false
		}
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return false
	}
	if !h.checkCSRF(r) {
		http.Error(w, "missing or invalid CSRF token (reload the page)", http.StatusForbidden)
		return false
	}
	return true
}

// formPause handles the pause and resume buttons of the pages: form fields csrf and next.
func (h *handler) formPause(paused bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !h.parseForm(w, r) {
			return
		}
		queue := r.PathValue("queue")
		if err := h.pause(r, queue, paused); err != nil {
			h.pageError(w, r, err)
			return
		}
		next := localPath(r.PostForm.Get("next"), "/queues/"+url.PathEscape(queue))
		http.Redirect(w, r, h.basePath+next, http.StatusSeeOther)
	}
}

// payloadText shows a payload on one line; payloadPretty indents JSON for the task page.
func payloadText(p []byte) string {
	if len(p) == 0 {
		return "-"
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, p); err == nil {
		return buf.String()
	}
	return fmt.Sprintf("%q", p)
}

func payloadPretty(p []byte) string {
	if len(p) == 0 {
		return "(empty)"
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, p, "", "  "); err == nil {
		return buf.String()
	}
	return fmt.Sprintf("%q", p)
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
