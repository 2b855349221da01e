package dashboard

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/internal/apiv1"
)

// The routes of cancellation, periodic schedules and limits (JSON API and pages).
func (h *handler) schedRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /api/v1/tasks/{id}/cancel", h.apiCancel)
	m.HandleFunc("GET /api/v1/periodic", h.apiPeriodic)
	m.HandleFunc("POST /api/v1/periodic", h.apiSetPeriodic)
	m.HandleFunc("POST /api/v1/periodic/{name}/delete", h.apiRemovePeriodic)
	m.HandleFunc("GET /api/v1/limits", h.apiLimits)
	m.HandleFunc("POST /api/v1/limits", h.apiSetLimit)
	m.HandleFunc("POST /api/v1/limits/delete", h.apiDeleteLimit)
	m.HandleFunc("GET /periodic", h.pagePeriodic)
	m.HandleFunc("POST /tasks/{id}/cancel", h.formCancel)
}

// uniqueRequest is the part of an enqueue's body that makes the task unique.
type uniqueRequest struct {
	UniqueForSeconds float64 `json:"unique_for_seconds"`
	UniqueKey        string  `json:"unique_key"`
}

// maxSeconds bounds durations given in seconds (ten years).
const maxSeconds = 10 * 365 * 24 * 3600

// options returns the task options of u, or why they are bad.
func (u uniqueRequest) options() ([]brisk.Option, string) {
	switch {
	case u.UniqueForSeconds < 0 || math.IsNaN(u.UniqueForSeconds) || u.UniqueForSeconds > maxSeconds:
		return nil, "unique_for_seconds must be from 0 to ten years"
	case u.UniqueKey != "" && u.UniqueForSeconds == 0:
		return nil, "unique_key needs unique_for_seconds (how long the key is held)"
	case u.UniqueForSeconds == 0:
		return nil, ""
	}
	window := time.Duration(u.UniqueForSeconds * float64(time.Second))
	if window < time.Millisecond {
		return nil, "unique_for_seconds must be at least 0.001"
	}
	return []brisk.Option{brisk.UniqueKey(u.UniqueKey, window)}, ""
}

// enqueueError answers a failed enqueue: 409 with the ID of the task that holds the
// unique key or ID ({"error": …, "id": …}), else as brokerError.
func (h *handler) enqueueError(w http.ResponseWriter, r *http.Request, id string, err error) {
	var dup *brisk.DuplicateError
	if errors.As(err, &dup) {
		writeJSON(w, http.StatusConflict, map[string]string{"error": message(err), "id": dup.ID})
		return
	}
	h.brokerError(w, r, err)
}

// apiCancel handles POST /api/v1/tasks/{id}/cancel (an empty body or object) and answers
// {"id": …, "was": the state it was in}.
func (h *handler) apiCancel(w http.ResponseWriter, r *http.Request) {
	if !decodeEmptyJSON(w, r) {
		return
	}
	id := r.PathValue("id")
	was, err := h.in.CancelTask(r.Context(), id)
	if err != nil {
		h.brokerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": id, "was": string(was)})
}

func (h *handler) apiPeriodic(w http.ResponseWriter, r *http.Request) {
	ps, err := h.in.Periodic(r.Context())
	if err != nil {
		h.brokerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, apiv1.PeriodicList(ps))
}

// periodicRequest is the body of POST /api/v1/periodic.
type periodicRequest struct {
	Name           string          `json:"name"`
	Spec           string          `json:"spec"`
	Queue          string          `json:"queue"`
	Type           string          `json:"type"`
	Payload        json.RawMessage `json:"payload"`
	MaxAttempts    int             `json:"max_attempts"`
	TimeoutSeconds float64         `json:"timeout_seconds"`
	CatchUp        bool            `json:"catch_up"`
}

// apiSetPeriodic stores a schedule and answers 201 with it as listed.
func (h *handler) apiSetPeriodic(w http.ResponseWriter, r *http.Request) {
	var req periodicRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	switch {
	case req.Name == "" || req.Spec == "" || req.Type == "":
		writeError(w, http.StatusBadRequest, "name, spec and type are required")
		return
	case req.TimeoutSeconds < 0 || math.IsNaN(req.TimeoutSeconds) || req.TimeoutSeconds > maxSeconds:
		writeError(w, http.StatusBadRequest, "timeout_seconds must be from 0 to ten years")
		return
	}
	var payload []byte
	if len(req.Payload) > 0 && string(req.Payload) != "null" {
		payload = []byte(req.Payload)
	}
	task := brisk.NewTask(req.Type, payload, brisk.InQueue(req.Queue), brisk.MaxAttempts(req.MaxAttempts),
		brisk.Timeout(time.Duration(req.TimeoutSeconds*float64(time.Second))))
	if err := h.client.SetPeriodic(r.Context(), brisk.Periodic{Name: req.Name, Spec: req.Spec, Task: task, CatchUp: req.CatchUp}); err != nil {
		h.brokerError(w, r, err)
		return
	}
	ps, err := h.in.Periodic(r.Context())
	if err != nil {
		h.brokerError(w, r, err)
		return
	}
	for _, p := range ps {
		if p.Name == req.Name {
			writeJSON(w, http.StatusCreated, apiv1.FromPeriodic(p))
			return
		}
	}
	writeError(w, http.StatusConflict, "the schedule was removed at once by another client")
}

func (h *handler) apiRemovePeriodic(w http.ResponseWriter, r *http.Request) {
	if !decodeEmptyJSON(w, r) {
		return
	}
	name := r.PathValue("name")
	if err := h.client.RemovePeriodic(r.Context(), name); err != nil {
		h.brokerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"removed": name})
}

func (h *handler) apiLimits(w http.ResponseWriter, r *http.Request) {
	ls, err := h.in.Limits(r.Context())
	if err != nil {
		h.brokerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, apiv1.Limits(ls))
}

// apiSetLimit handles POST /api/v1/limits with a limit's JSON shape (per_seconds for the
// rate's period) and answers it back, the burst defaulted.
func (h *handler) apiSetLimit(w http.ResponseWriter, r *http.Request) {
	var req apiv1.Limit
	if !decodeJSON(w, r, &req) {
		return
	}
	if req.PerSeconds < 0 || math.IsNaN(req.PerSeconds) || req.PerSeconds > maxSeconds {
		writeError(w, http.StatusBadRequest, "per_seconds must be from 0 to ten years")
		return
	}
	l := brisk.Limit{Queue: req.Queue, Type: req.Type, Rate: req.Rate, Per: time.Duration(req.PerSeconds * float64(time.Second)),
		Burst: req.Burst, MaxRunning: req.MaxRunning}
	if err := h.in.SetLimit(r.Context(), l); err != nil {
		h.brokerError(w, r, err)
		return
	}
	if l.Rate > 0 && l.Burst == 0 {
		l.Burst = l.Rate
	}
	writeJSON(w, http.StatusOK, apiv1.Limits([]brisk.Limit{l})[0])
}

// apiDeleteLimit handles POST /api/v1/limits/delete with {"queue": …, "type": …}.
func (h *handler) apiDeleteLimit(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Queue string `json:"queue"`
		Type  string `json:"type"`
	}
	if !decodeJSON(w, r, &req) {
		return
	}
	if err := h.in.DeleteLimit(r.Context(), req.Queue, req.Type); err != nil {
		h.brokerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"queue": req.Queue, "type": req.Type, "removed": "true"})
}

// periodicData is what the periodic page shows.
type periodicData struct {
	CanSchedule bool
	Schedules   []brisk.PeriodicInfo
	Leader      string
	CanLimit    bool
	Limits      []brisk.Limit
}

func (h *handler) pagePeriodic(w http.ResponseWriter, r *http.Request) {
	d := periodicData{CanSchedule: h.in.CanSchedule(), CanLimit: h.in.CanLimit()}
	var err error
	if d.CanSchedule {
		if d.Schedules, err = h.in.Periodic(r.Context()); err == nil {
			d.Leader, err = h.in.PeriodicLeader(r.Context())
		}
	}
	if err == nil && d.CanLimit {
		d.Limits, err = h.in.Limits(r.Context())
	}
	if err != nil {
		h.pageError(w, r, err)
		return
	}
	h.render(w, r, "periodic", "Periodic tasks and limits", d)
}

// formCancel handles the cancel button of the task page: form fields csrf and next.
func (h *handler) formCancel(w http.ResponseWriter, r *http.Request) {
	if !h.parseForm(w, r) {
		return
	}
	id := r.PathValue("id")
	if _, err := h.in.CancelTask(r.Context(), id); err != nil {
		h.pageError(w, r, err)
		return
	}
	next := localPath(r.PostForm.Get("next"), "/tasks/"+url.PathEscape(id))
	http.Redirect(w, r, h.basePath+next, http.StatusSeeOther)
}
