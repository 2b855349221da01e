package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/briskq/brisk"
)

// sample is one queue's state at one moment.
type sample struct {
	at        time.Time
	latency   time.Duration
	completed int64
	failed    int64
}

// decision is one decision of an autoscaler, as its GET /decisions serves it (see
// autoscale.DecisionRecord; the dashboard does not depend on that package).
type decision struct {
	Time           time.Time `json:"time"`
	Queue          string    `json:"queue"`
	Current        int       `json:"current"`
	Desired        int       `json:"desired"`
	Reason         string    `json:"reason"`
	LatencySeconds float64   `json:"latency_seconds"`
}

// decisionsTimeout bounds one fetch of an autoscaler's decisions.
const decisionsTimeout = 2 * time.Second

// sampler records every queue's latency and counters at a fixed interval and keeps them
// for a window (an hour): the charts and the throughput come from it, so pages never ask
// the broker for more than its cheap Stats. When the broker keeps samples
// (Inspector.AddSamples), every sample also goes there, and the sampler merges in what
// the store holds (the history from before it started, and the samples of the other
// dashboards on the store), so that every dashboard shows the same last hour.
type sampler struct {
	in       *brisk.Inspector
	interval time.Duration
	keep     time.Duration
	log      *slog.Logger

	// decisionsURL, when set, is an autoscaler's GET /decisions, fetched at every sample.
	decisionsURL string
	httpClient   *http.Client

	// store is false once the broker said it cannot keep samples.
	store bool
	// fetched is the time of the newest merge of the store's samples (zero before the first).
	fetched time.Time

	mu        sync.Mutex
	history   map[string][]sample   // oldest first
	decisions map[string][]decision // per queue, oldest first
	failing   bool                  // the last fetch of decisions failed (and was logged)
}

func newSampler(in *brisk.Inspector, interval, keep time.Duration, log *slog.Logger) *sampler {
	return &sampler{in: in, interval: interval, keep: keep, log: log, store: true, history: map[string][]sample{},
		decisions:  map[string][]decision{},
		httpClient: &http.Client{Timeout: decisionsTimeout, Transport: http.DefaultTransport.(*http.Transport).Clone()}}
}

func (s *sampler) run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	defer s.httpClient.CloseIdleConnections()
	for {
		if err := s.sampleOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("brisk dashboard: sample queues", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *sampler) sampleOnce(ctx context.Context) error {
	if s.decisionsURL != "" {
		s.sampleDecisions(ctx)
	}
	qs, err := s.in.Queues(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	s.record(now, qs)
	return s.share(ctx, now, qs)
}

// share stores the samples just taken in the broker and merges in the store's samples
// since the last merge (with an overlap, for samples another dashboard stored late), or
// of the whole window at the first call. A broker that cannot keep samples is asked once.
func (s *sampler) share(ctx context.Context, now time.Time, qs []brisk.QueueInfo) error {
	if !s.store {
		return nil
	}
	out := make([]brisk.QueueSample, len(qs))
	for i, q := range qs {
		out[i] = brisk.QueueSample{Queue: q.Name, At: now, Latency: q.Latency, Completed: q.Completed, Failed: q.Failed}
	}
	err := s.in.AddSamples(ctx, out)
	if errors.Is(err, brisk.ErrUnsupported) {
		s.store = false
		return nil
	}
	if err != nil {
		return err
	}
	since := now.Add(-s.keep)
	if overlap := s.fetched.Add(-max(2*s.interval, 10*time.Second)); overlap.After(since) {
		since = overlap
	}
	stored, err := s.in.Samples(ctx, since)
	if err != nil {
		return err
	}
	s.fetched = now
	s.merge(now, stored)
	return nil
}

// merge adds samples of the store that the history lacks (to the millisecond: its own come
// back), in time order, for the queues the last Stats listed.
func (s *sampler) merge(now time.Time, stored []brisk.QueueSample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cut := now.Add(-s.keep)
	for _, x := range stored {
		h, listed := s.history[x.Queue]
		if !listed || x.At.Before(cut) {
			continue
		}
		s.history[x.Queue] = insert(h, sample{at: x.At, latency: x.Latency, completed: x.Completed, failed: x.Failed})
	}
}

// insert adds x to a history in time order, unless it holds a sample of the same
// millisecond already.
func insert(h []sample, x sample) []sample {
	ms := x.at.UnixMilli()
	i := sort.Search(len(h), func(i int) bool { return h[i].at.UnixMilli() >= ms })
	if i < len(h) && h[i].at.UnixMilli() == ms {
		return h
	}
	h = append(h, sample{})
	copy(h[i+1:], h[i:])
	h[i] = x
	return h
}

func (s *sampler) record(now time.Time, qs []brisk.QueueInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cut := now.Add(-s.keep)
	seen := make(map[string]bool, len(qs))
	for _, q := range qs {
		seen[q.Name] = true
		h := s.history[q.Name]
		i := 0
		for i < len(h) && h[i].at.Before(cut) {
			i++
		}
		s.history[q.Name] = insert(h[i:], sample{at: now, latency: q.Latency, completed: q.Completed, failed: q.Failed})
	}
	for name := range s.history {
		if !seen[name] {
			delete(s.history, name)
		}
	}
}

// sampleDecisions fetches the autoscaler's decisions and keeps the window's. A failure is
// logged once (until a fetch succeeds again) and otherwise ignored: the charts then show
// the decisions already kept.
func (s *sampler) sampleDecisions(ctx context.Context) {
	ds, err := s.fetchDecisions(ctx)
	s.mu.Lock()
	wasFailing := s.failing
	s.failing = err != nil
	s.mu.Unlock()
	if err != nil {
		if !wasFailing && ctx.Err() == nil {
			s.log.Warn("brisk dashboard: autoscaler decisions (ignored until they can be read)", "err", err)
		}
		return
	}
	s.recordDecisions(time.Now(), ds)
}

func (s *sampler) fetchDecisions(ctx context.Context) ([]decision, error) {
	ctx, cancel := context.WithTimeout(ctx, decisionsTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.decisionsURL, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", s.decisionsURL, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.httpClient.Do(req)
	if err != nil {
		return nil, err // names the URL
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("GET %s: %s", s.decisionsURL, resp.Status)
	}
	var ds []decision
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(&ds); err != nil {
		return nil, fmt.Errorf("GET %s: decode: %w", s.decisionsURL, err)
	}
	return ds, nil
}

// recordDecisions adds the decisions newer than the last one kept of their queue and drops
// those older than the window.
func (s *sampler) recordDecisions(now time.Time, ds []decision) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cut := now.Add(-s.keep)
	ds = append([]decision(nil), ds...)
	sort.SliceStable(ds, func(i, j int) bool { return ds[i].Time.Before(ds[j].Time) })
	last := make(map[string]time.Time, len(s.decisions))
	for q, h := range s.decisions {
		if len(h) > 0 {
			last[q] = h[len(h)-1].Time
		}
	}
	for _, d := range ds {
		if d.Queue == "" || d.Time.IsZero() || d.Time.Before(cut) || !d.Time.After(last[d.Queue]) {
			continue
		}
		s.decisions[d.Queue] = append(s.decisions[d.Queue], d)
	}
	for q, h := range s.decisions {
		i := 0
		for i < len(h) && h[i].Time.Before(cut) {
			i++
		}
		if i == len(h) {
			delete(s.decisions, q)
			continue
		}
		s.decisions[q] = append(h[:0:0], h[i:]...)
	}
}

// decisionsOf returns a copy of the autoscaler decisions kept for a queue, oldest first.
func (s *sampler) decisionsOf(queue string) []decision {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]decision(nil), s.decisions[queue]...)
}

// decisionsEndpoint returns the /decisions URL of an autoscaler's base URL.
func decisionsEndpoint(base string) string {
	return strings.TrimSuffix(base, "/") + "/decisions"
}

// series returns a copy of a queue's samples, oldest first.
func (s *sampler) series(queue string) []sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sample(nil), s.history[queue]...)
}

// rates returns how many tasks of the queue completed and failed per minute over the
// window ending with cur (the counters just read), measured from the oldest sample within
// the window; ok is false while there is no such sample at least a second old.
func (s *sampler) rates(q brisk.QueueInfo, now time.Time, window time.Duration) (completed, failed float64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.history[q.Name] {
		if now.Sub(x.at) > window {
			continue
		}
		dt := now.Sub(x.at).Minutes()
		if dt < 1.0/60 || q.Completed < x.completed || q.Failed < x.failed {
			return 0, 0, false
		}
		return float64(q.Completed-x.completed) / dt, float64(q.Failed-x.failed) / dt, true
	}
	return 0, 0, false
}
