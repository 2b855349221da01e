package dashboard

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/internal/apiv1"
)

// writeJSON writes v with status. Payloads stay as they are (no HTML escaping), like the CLI.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// writeError writes the API's error shape {"error": msg}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// brokerError maps an error of the library to a status and writes it.
func (h *handler) brokerError(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, brisk.ErrUnsupported):
		status = http.StatusNotImplemented
	case errors.Is(err, brisk.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, brisk.ErrNotFound), errors.Is(err, brisk.ErrQueueNotFound):
		status = http.StatusNotFound
	case errors.Is(err, brisk.ErrDuplicate), errors.Is(err, brisk.ErrQueueNotEmpty):
		status = http.StatusConflict
	case errors.Is(err, brisk.ErrPayloadTooLarge):
		status = http.StatusRequestEntityTooLarge
	case errors.Is(err, brisk.ErrUnavailable), errors.Is(err, brisk.ErrClosed):
		status = http.StatusServiceUnavailable
	}
	if status >= 500 && status != http.StatusNotImplemented {
		h.log.Error("brisk dashboard: broker", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, status, message(err))
}

// message is err's text without the "brisk: " that each layer of the library prefixes.
func message(err error) string {
	msg := strings.ReplaceAll(err.Error(), ": brisk: ", ": ")
	for strings.HasPrefix(msg, "brisk: ") {
		msg = strings.TrimPrefix(msg, "brisk: ")
	}
	return msg
}

func (h *handler) apiQueues(w http.ResponseWriter, r *http.Request) {
	qs, err := h.in.Queues(r.Context())
	if err != nil {
		h.brokerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, apiv1.Queues(qs))
}

// listParams reads ?state=&limit=&offset= (defaults pending, 100, 0; limit at most 1000).
func listParams(r *http.Request) (state brisk.State, limit, offset int, err error) {
	q := r.URL.Query()
	state, limit = brisk.StatePending, 100
	if s := q.Get("state"); s != "" {
		state = brisk.State(s)
	}
	if !state.Valid() {
		return "", 0, 0, fmt.Errorf("state %q is not one of pending, scheduled, running, dead, cancelled, completed", state)
	}
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > 1000 {
			return "", 0, 0, fmt.Errorf("limit %q is not a number from 1 to 1000", s)
		}
	}
	if s := q.Get("offset"); s != "" {
		if offset, err = strconv.Atoi(s); err != nil || offset < 0 {
			return "", 0, 0, fmt.Errorf("offset %q is not a number from 0", s)
		}
	}
	return state, limit, offset, nil
}

func (h *handler) apiTasks(w http.ResponseWriter, r *http.Request) {
	state, limit, offset, err := listParams(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ts, err := h.in.Tasks(r.Context(), r.PathValue("queue"), state, limit, offset)
	if err != nil {
		h.brokerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, apiv1.Tasks(ts))
}

func (h *handler) apiTask(w http.ResponseWriter, r *http.Request) {
	t, err := h.in.Task(r.Context(), r.PathValue("id"))
	if err != nil {
		h.brokerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, apiv1.FromTask(t))
}

func (h *handler) apiWorkers(w http.ResponseWriter, r *http.Request) {
	ws, err := h.in.Workers(r.Context())
	if err != nil {
		h.brokerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, apiv1.Workers(ws))
}

// decodeJSON decodes the body of an API POST into v strictly: JSON content type (which a
// cross-site form cannot send without a CORS preflight), no unknown field, one value.
// It writes the error response and returns false on failure.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return false
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = errors.New("data after the JSON value")
		}
	}
	switch {
	case err == nil:
		return true
	case bodyTooLarge(err):
		writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
	case errors.Is(err, io.EOF):
		writeError(w, http.StatusBadRequest, "malformed JSON: empty body")
	default:
		writeError(w, http.StatusBadRequest, "malformed JSON: "+err.Error())
	}
	return false
}

// apiEnqueue handles POST /api/v1/queues/{queue}/tasks (see enqueueOne in api_tasks.go).
func (h *handler) apiEnqueue(w http.ResponseWriter, r *http.Request) {
	h.enqueueOne(w, r)
}

// delayOf turns delay_seconds into a delay: a number of seconds from 0 up to
// brisk.MaxScheduleAhead, refused past it with the rule the Go API and the CLI state.
func delayOf(seconds float64) (time.Duration, error) {
	switch {
	case seconds < 0 || math.IsNaN(seconds) || math.IsInf(seconds, 0):
		return 0, errors.New("delay_seconds must be a number of seconds from 0")
	case seconds > brisk.MaxScheduleAhead.Seconds():
		return 0, fmt.Errorf("delay_seconds %g: %s", seconds, brisk.ScheduleAheadRule)
	}
	return time.Duration(seconds * float64(time.Second)), nil
}

// checkPayload refuses a payload that is not valid UTF-8: the JSON decoder copies the
// bytes of a raw value as they came, and a payload stored so would be echoed back as
// invalid JSON.
func checkPayload(raw json.RawMessage) error {
	if !utf8.Valid(raw) {
		return errors.New("payload is not valid UTF-8 (JSON text must be; send binary data as a base64 string)")
	}
	return nil
}

// apiDeleteQueue handles POST /api/v1/queues/{queue}/delete: it removes a queue that
// holds no task and answers {"queue": Q, "deleted": true}; 409 when the queue holds tasks,
// 404 when it does not exist, 501 when the broker cannot delete queues. The body is empty
// or {}, with the JSON content type of every API POST.
func (h *handler) apiDeleteQueue(w http.ResponseWriter, r *http.Request) {
	if !decodeEmptyJSON(w, r) {
		return
	}
	queue := r.PathValue("queue")
	if err := h.in.DeleteQueue(r.Context(), queue); err != nil {
		h.brokerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"queue": queue, "deleted": true})
}

// selection is the body of the dead-task actions: some ids, or all.
type selection struct {
	IDs []string `json:"ids"`
	All bool     `json:"all"`
}

func (h *handler) apiDead(retry bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var sel selection
		if !decodeJSON(w, r, &sel) {
			return
		}
		if sel.All == (len(sel.IDs) > 0) {
			writeError(w, http.StatusBadRequest, `give "ids" (a non-empty array) or "all": true, not both`)
			return
		}
		n, err := h.deadAction(r, retry, sel.IDs)
		if err != nil {
			h.brokerError(w, r, err)
			return
		}
		key := "deleted"
		if retry {
			key = "retried"
		}
		writeJSON(w, http.StatusOK, map[string]int{key: n})
	}
}

// deadAction retries or deletes dead tasks of the request's queue: ids, or all when none.
func (h *handler) deadAction(r *http.Request, retry bool, ids []string) (int, error) {
	queue := r.PathValue("queue")
	if retry {
		return h.in.RetryDead(r.Context(), queue, ids...)
	}
	return h.in.DeleteTasks(r.Context(), queue, brisk.StateDead, ids...)
}

// apiPause handles POST /api/v1/queues/{queue}/pause and /resume. The body is empty or an
// empty JSON object, but the Content-Type must be application/json (as for every API POST,
// so that a cross-site form cannot send it). It answers {"queue": Q, "paused": bool}.
func (h *handler) apiPause(paused bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !decodeEmptyJSON(w, r) {
			return
		}
		queue := r.PathValue("queue")
		if err := h.pause(r, queue, paused); err != nil {
			h.brokerError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"queue": queue, "paused": paused})
	}
}

// pause pauses or resumes queue.
func (h *handler) pause(r *http.Request, queue string, paused bool) error {
	if paused {
		return h.in.PauseQueue(r.Context(), queue)
	}
	return h.in.ResumeQueue(r.Context(), queue)
}

// decodeEmptyJSON checks a body that carries no parameters: JSON content type, and an
// empty body or an empty object. It writes the error response and returns false on failure.
func decodeEmptyJSON(w http.ResponseWriter, r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return false
	}
	body, err := io.ReadAll(r.Body)
	switch {
	case bodyTooLarge(err):
		writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
		return false
	case err != nil:
		writeError(w, http.StatusBadRequest, "cannot read the body: "+err.Error())
		return false
	case len(strings.TrimSpace(string(body))) == 0:
		return true
	}
	r.Body = io.NopCloser(strings.NewReader(string(body)))
	var none struct{}
	return decodeJSON(w, r, &none)
}
