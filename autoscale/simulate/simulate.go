// Package simulate replays arrival traces through brisk's autoscaling policies in a
// deterministic discrete-time model of one queue and its workers, and compares them: the
// share of time within the SLA, latency percentiles, worker-seconds and scaling actions.
// `brisk simulate` is built on it; docs/autoscaling.md explains the model.
package simulate

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/autoscale"
)

// invalidf returns an error wrapping brisk.ErrInvalid with a "simulate: " message.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("simulate: %s: %w", fmt.Sprintf(format, args...), brisk.ErrInvalid)
}

// The simulator's model: tasks arrive as a Poisson process whose rate follows a trace; each
// task's handler time is log-normal with mean 200 ms and σ = 0.5 (of the underlying normal);
// each worker runs Slots handlers and serves only after its start-up delay; one FIFO queue;
// a stopping worker takes no new task and leaves when its running ones are done. Time
// advances in steps of 100 ms; a slot freed inside a step starts the next waiting task at
// once, an idle slot takes a task at the next step. Every configuration of a trace sees the
// same tasks (same arrival times, same handler times), so differences come from the
// policies alone.
const (
	simStep       = 0.1 // seconds
	serviceMean   = 0.2 // seconds
	serviceSigma  = 0.5
	cpuPerHandler = 0.05 // share of one core a running IO-bound handler uses
)

// Config describes one simulated run apart from its policy.
type Config struct {
	// SLA is the queue's latency target. Default 30 s.
	SLA time.Duration
	// Startup is how long a new worker takes before it serves. 0 means the default, 30 s;
	// a negative value means none.
	Startup time.Duration
	// Slots is the handlers per worker. Default 10.
	Slots int
	// Interval is how often the controller samples and decides. Default 10 s.
	Interval time.Duration
	// Seed makes the arrivals and handler times (and the spiky trace) reproducible.
	Seed uint64
}

func (c Config) withDefaults() Config {
	if c.SLA <= 0 {
		c.SLA = 30 * time.Second
	}
	if c.Startup < 0 {
		c.Startup = 0
	} else if c.Startup == 0 {
		c.Startup = 30 * time.Second
	}
	if c.Slots <= 0 {
		c.Slots = 10
	}
	if c.Interval <= 0 {
		c.Interval = 10 * time.Second
	}
	return c
}

// Trace is an arrival pattern: tasks per second as a step function of time.
type Trace struct {
	Name string
	// Seconds is the trace's length.
	Seconds int
	// Rate is the arrival rate (tasks/s) during each second.
	Rate []float64
}

// TraceNames lists the built-in traces.
var TraceNames = []string{"steady", "burst", "diurnal", "spiky"}

// BuiltinTrace returns the trace called name as docs/workloads.md defines it. The spiky
// trace's spike times come from seed.
func BuiltinTrace(name string, seed uint64) (*Trace, error) {
	mk := func(secs int, f func(t int) float64) *Trace {
		tr := &Trace{Name: name, Seconds: secs, Rate: make([]float64, secs)}
		for t := range tr.Rate {
			tr.Rate[t] = f(t)
		}
		return tr
	}
	switch name {
	case "steady":
		return mk(3600, func(int) float64 { return 50 }), nil
	case "burst":
		return mk(3600, func(t int) float64 {
			if t >= 20*60 && t < 30*60 {
				return 400
			}
			return 20
		}), nil
	case "diurnal":
		// A day in two hours: night (5/s) at both ends, midday (150/s) in the middle.
		return mk(7200, func(t int) float64 {
			return 77.5 - 72.5*math.Cos(2*math.Pi*(float64(t)+0.5)/7200)
		}), nil
	case "spiky":
		rng := rand.New(rand.NewPCG(seed, 0x5b1c7))
		var starts []int
		for len(starts) < 20 {
			s := rng.IntN(3600 - 60)
			if !slices.ContainsFunc(starts, func(o int) bool { return s < o+60 && o < s+60 }) {
				starts = append(starts, s)
			}
		}
		return mk(3600, func(t int) float64 {
			for _, s := range starts {
				if t >= s && t < s+60 {
					return 300
				}
			}
			return 30
		}), nil
	}
	return nil, invalidf("unknown trace %q (want steady, burst, diurnal or spiky)", name)
}

// ReadTrace reads a trace file: lines "second,arrivals_per_second", seconds increasing
// from 0, each rate holding until the next line; the trace ends one step after the last
// line's second (or at a last line with rate 0, which only marks the end). Blank lines and
// lines starting with # are skipped. A bad line is an error naming its number.
func ReadTrace(name string, r io.Reader) (*Trace, error) {
	type point struct {
		at   int
		rate float64
	}
	var pts []point
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		a, b, ok := strings.Cut(line, ",")
		if !ok {
			return nil, invalidf("trace %s line %d: want \"second,arrivals_per_second\", got %q", name, n, line)
		}
		at, err := strconv.Atoi(strings.TrimSpace(a))
		if err != nil || at < 0 {
			return nil, invalidf("trace %s line %d: second %q is not a non-negative integer", name, n, strings.TrimSpace(a))
		}
		rate, err := strconv.ParseFloat(strings.TrimSpace(b), 64)
		if err != nil || rate < 0 || math.IsNaN(rate) || math.IsInf(rate, 0) || rate > 1e5 {
			return nil, invalidf("trace %s line %d: rate %q is not a number from 0 to 100000", name, n, strings.TrimSpace(b))
		}
		if len(pts) == 0 && at != 0 {
			return nil, invalidf("trace %s line %d: the first second must be 0, got %d", name, n, at)
		}
		if len(pts) > 0 && at <= pts[len(pts)-1].at {
			return nil, invalidf("trace %s line %d: second %d does not follow %d", name, n, at, pts[len(pts)-1].at)
		}
		if at > 7*24*3600 {
			return nil, invalidf("trace %s line %d: second %d is beyond a week", name, n, at)
		}
		pts = append(pts, point{at, rate})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("autoscale: read trace %s: %w", name, err)
	}
	if len(pts) == 0 {
		return nil, invalidf("trace %s has no line \"second,arrivals_per_second\"", name)
	}
	end := pts[len(pts)-1].at + 1
	if last := pts[len(pts)-1]; last.rate == 0 && len(pts) > 1 {
		end = last.at
	}
	tr := &Trace{Name: name, Seconds: end, Rate: make([]float64, end)}
	for i, p := range pts {
		stop := end
		if i+1 < len(pts) {
			stop = min(end, pts[i+1].at)
		}
		for t := p.at; t < stop; t++ {
			tr.Rate[t] = p.rate
		}
	}
	return tr, nil
}

// workload is a trace turned into tasks: arrival times (sorted) and handler times.
type workload struct {
	trace   *Trace
	arrive  []float64
	service []float64
}

func newWorkload(tr *Trace, seed uint64) *workload {
	rng := rand.New(rand.NewPCG(seed, 0xb415c))
	w := &workload{trace: tr}
	mu := math.Log(serviceMean) - serviceSigma*serviceSigma/2
	for sec, rate := range tr.Rate {
		if rate <= 0 {
			continue
		}
		// Exponential gaps within the second: the count is Poisson(rate), the times sorted.
		t := rng.ExpFloat64() / rate
		for t < 1 {
			w.arrive = append(w.arrive, float64(sec)+t)
			w.service = append(w.service, math.Exp(mu+serviceSigma*rng.NormFloat64()))
			t += rng.ExpFloat64() / rate
		}
	}
	return w
}

// Point is the state of a run at one time, for plots.
type Point struct {
	T       float64 // seconds
	Latency float64 // seconds
	Workers int     // alive, starting and stopping ones included
	Desired int
}

// Result is the figures of one simulated run.
type Result struct {
	Policy  string
	Params  map[string]float64
	Default bool
	// WithinSLA is the share of time steps whose queue latency is at or below the SLA.
	WithinSLA float64
	// P95Latency and P99Latency are percentiles of the queue latency over time steps (s).
	P95Latency, P99Latency float64
	// WorkerSeconds is the cost: workers alive (starting and stopping included) × time.
	WorkerSeconds float64
	// Actions counts changes of the desired count.
	Actions int
	// Slots per worker.
	Slots int
	// WorkSeconds is the summed handler time of the tasks started.
	WorkSeconds float64
	// Timeline has one point per controller interval.
	Timeline []Point
	// Decisions are the policy's decisions in order (only kept when asked).
	Decisions []autoscale.Decision
}

type simWorker struct {
	readyAt  float64
	busy     int
	stopping bool
	gone     bool
}

type running struct {
	finish, service float64
	w               *simWorker
}

// taskHeap is a min-heap of running tasks by finish time (hand-written: the simulator's
// inner loop).
type taskHeap []running

func (h *taskHeap) push(r running) {
	*h = append(*h, r)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if s[p].finish <= s[i].finish {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

func (h *taskHeap) pop() running {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(s) {
			break
		}
		if r := l + 1; r < len(s) && s[r].finish < s[l].finish {
			l = r
		}
		if s[i].finish <= s[l].finish {
			break
		}
		s[i], s[l] = s[l], s[i]
		i = l
	}
	*h = s
	return top
}

// Simulate runs policy p over workload w.
func simulate(w *workload, cfg Config, p autoscale.Policy, initial int, keepDecisions bool) Result {
	cfg = cfg.withDefaults()
	slots := cfg.Slots
	startup := cfg.Startup.Seconds()
	interval := cfg.Interval.Seconds()
	sla := cfg.SLA.Seconds()
	steps := int(math.Round(float64(w.trace.Seconds) / simStep))
	perInterval := max(1, int(math.Round(interval/simStep)))
	epoch := time.Unix(0, 0).UTC()

	var workers []*simWorker
	for range initial {
		workers = append(workers, &simWorker{})
	}
	var heap taskHeap
	var (
		head, next     int // queue: tasks head..next-1 wait; next is the first not yet arrived
		aliveSteps     int
		work           float64
		lat            = make([]float64, 0, steps)
		within         int
		actions        int
		desired        = initial
		arrivedIv      int
		doneIv         int
		serviceIv      float64
		busyIv, cpuIv  float64
		lastHandler    time.Duration
		res            = Result{Policy: p.Name(), Slots: slots}
		serving, alive int
	)
	start := func(i int, at float64, wk *simWorker) {
		heap.push(running{at + w.service[i], w.service[i], wk})
		wk.busy++
		work += w.service[i]
	}
	for step := 0; step < steps; step++ {
		t := float64(step) * simStep
		end := t + simStep
		// Idle slots of serving workers take waiting tasks.
		for _, wk := range workers {
			if wk.stopping || wk.readyAt > t {
				continue
			}
			for wk.busy < slots && head < next {
				start(head, t, wk)
				head++
			}
		}
		for next < len(w.arrive) && w.arrive[next] < end {
			next++
			arrivedIv++
		}
		// Completions within the step; a freed slot starts the next task that has arrived.
		for len(heap) > 0 && heap[0].finish < end {
			r := heap.pop()
			r.w.busy--
			doneIv++
			serviceIv += r.service
			if !r.w.stopping && head < next && w.arrive[head] <= r.finish {
				start(head, r.finish, r.w)
				head++
			}
		}
		// Leave stopped workers; count the rest.
		serving, alive = 0, 0
		busy := 0
		kept := workers[:0]
		for _, wk := range workers {
			if wk.stopping && wk.busy == 0 {
				wk.gone = true
				continue
			}
			kept = append(kept, wk)
			alive++
			busy += wk.busy
			if !wk.stopping && wk.readyAt <= end {
				serving++
			}
		}
		workers = kept
		aliveSteps += alive
		busyIv += float64(busy)
		if serving > 0 {
			cpuIv += min(1, float64(busy)*cpuPerHandler/float64(serving))
		}
		l := 0.0
		if head < next {
			l = end - w.arrive[head]
		}
		lat = append(lat, l)
		if l <= sla {
			within++
		}
		if (step+1)%perInterval != 0 {
			continue
		}
		// The controller samples and decides.
		ivs := float64(perInterval) * simStep
		if doneIv > 0 {
			lastHandler = time.Duration(serviceIv / float64(doneIv) * float64(time.Second))
		}
		now := epoch.Add(time.Duration(end * float64(time.Second)))
		current, servingNow, left := 0, 0, 0.0
		for _, wk := range workers {
			if !wk.stopping {
				current++
				if wk.readyAt <= end {
					servingNow++
				} else {
					left += wk.readyAt - end
				}
			}
		}
		if current > servingNow {
			left /= float64(current - servingNow)
		}
		s := autoscale.Sample{
			Queue: w.trace.Name, At: now, SLA: cfg.SLA,
			Latency:     time.Duration(l * float64(time.Second)),
			Pending:     int64(next - head),
			ArrivalRate: float64(arrivedIv) / ivs, CompletionRate: float64(doneIv) / ivs,
			HandlerTime: lastHandler, Workers: current, Serving: servingNow, Slots: slots,
			StartupLeft: time.Duration(left * float64(time.Second)),
			Busy:        busyIv / float64(perInterval), CPU: cpuIv / float64(perInterval),
		}
		d := p.Decide(now, s, current)
		if keepDecisions {
			res.Decisions = append(res.Decisions, d)
		}
		if d.Desired != desired {
			actions++
			desired = d.Desired
		}
		apply(&workers, d.Desired, end, startup)
		res.Timeline = append(res.Timeline, Point{T: end, Latency: l, Workers: len(workers), Desired: d.Desired})
		arrivedIv, doneIv, serviceIv, busyIv, cpuIv = 0, 0, 0, 0, 0
	}
	res.WorkerSeconds = float64(aliveSteps) * simStep
	res.WorkSeconds = work
	res.Actions = actions
	res.WithinSLA = float64(within) / float64(max(1, len(lat)))
	slices.Sort(lat)
	res.P95Latency = percentile(lat, 0.95)
	res.P99Latency = percentile(lat, 0.99)
	return res
}

// apply brings the count of non-stopping workers to n at time now: new workers serve after
// startup; surplus ones are cancelled while starting (newest first), else stopped
// gracefully, the least busy first.
func apply(workers *[]*simWorker, n int, now, startup float64) {
	ws := *workers
	current := 0
	for _, wk := range ws {
		if !wk.stopping {
			current++
		}
	}
	for ; current < n; current++ {
		ws = append(ws, &simWorker{readyAt: now + startup})
	}
	for current > n {
		var pick *simWorker
		for _, wk := range ws {
			if wk.stopping {
				continue
			}
			switch {
			case pick == nil:
				pick = wk
			case wk.readyAt > now || pick.readyAt > now: // starting: the newest goes first
				if wk.readyAt > pick.readyAt {
					pick = wk
				}
			case wk.busy < pick.busy:
				pick = wk
			}
		}
		pick.stopping = true
		current--
	}
	// A starting worker has no task: it leaves at once.
	kept := ws[:0]
	for _, wk := range ws {
		if wk.stopping && wk.busy == 0 {
			continue
		}
		kept = append(kept, wk)
	}
	*workers = kept
}

func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(len(sorted)-1, i))]
}

// ParamString formats params as "k=v" pairs in a fixed order (sorted by key).
func ParamString(params map[string]float64) string {
	if len(params) == 0 {
		return "defaults"
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.FormatFloat(params[k], 'g', -1, 64)
	}
	return strings.Join(parts, " ")
}

// PolicyConfig is one policy configuration of a sweep.
type PolicyConfig struct {
	Policy  string
	Params  map[string]float64
	Default bool
}

// Sweep returns the configurations a comparison runs: the default sla policy and a
// few variants, and each baseline over a grid of its parameters. maxFixed is the largest
// fixed count tried.
func Sweep(maxFixed int) []PolicyConfig {
	cs := []PolicyConfig{{Policy: "sla", Params: map[string]float64{}, Default: true}}
	for _, u := range []float64{0.8, 1} {
		cs = append(cs, PolicyConfig{Policy: "sla", Params: map[string]float64{"utilisation": u}})
	}
	for _, m := range []float64{0.25, 0.8} {
		cs = append(cs, PolicyConfig{Policy: "sla", Params: map[string]float64{"margin": m}})
	}
	for _, m := range []float64{0.5, 0.65, 0.9} {
		cs = append(cs, PolicyConfig{Policy: "sla", Params: map[string]float64{"react": m}})
	}
	for _, m := range []float64{300, 1200} {
		cs = append(cs, PolicyConfig{Policy: "sla", Params: map[string]float64{"memory": m}})
	}
	for _, up := range []float64{2, 5, 10, 20} {
		for _, step := range []float64{1, 2, 4, 8} {
			for _, win := range []float64{10, 30, 60, 180} {
				cs = append(cs, PolicyConfig{Policy: "threshold", Params: map[string]float64{
					"upper": up, "lower": up / 5, "step": step, "window": win}})
			}
		}
	}
	for _, per := range []float64{10, 25, 50, 100, 200, 500, 1000, 2000} {
		for _, win := range []float64{30, 300} {
			cs = append(cs, PolicyConfig{Policy: "queue_length", Params: map[string]float64{"per_worker": per, "stabilise": win}})
		}
	}
	for _, tgt := range []float64{0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8} {
		for _, win := range []float64{30, 300} {
			cs = append(cs, PolicyConfig{Policy: "cpu", Params: map[string]float64{"target": tgt, "stabilise": win}})
		}
	}
	for n := 1; n <= maxFixed; n++ {
		cs = append(cs, PolicyConfig{Policy: "fixed", Params: map[string]float64{"n": float64(n)}})
	}
	return cs
}

// Simulation is a trace with its configuration, ready to run policies on.
type Simulation struct {
	cfg Config
	w   *workload
}

// New prepares trace tr under cfg: it draws the tasks once, so that every run
// sees the same ones.
func New(tr *Trace, cfg Config) *Simulation {
	cfg = cfg.withDefaults()
	return &Simulation{cfg: cfg, w: newWorkload(tr, cfg.Seed)}
}

// Tasks returns how many tasks the trace brings.
func (s *Simulation) Tasks() int { return len(s.w.arrive) }

// Run simulates one configuration. Every run starts with the bounds' minimum of serving
// workers (a fixed policy with its count).
func (s *Simulation) Run(c PolicyConfig, keepDecisions bool) (Result, error) {
	p, err := autoscale.NewPolicy(c.Policy, autoscale.DefaultBounds, c.Params)
	if err != nil {
		return Result{}, err
	}
	initial := autoscale.DefaultBounds.Min
	switch p := p.(type) {
	case *autoscale.Fixed:
		initial = max(autoscale.DefaultBounds.Min, min(autoscale.DefaultBounds.Max, p.N))
	case *autoscale.SLA:
		// The operator knows how long a worker takes to start and how often it samples.
		if _, ok := c.Params["startup"]; !ok {
			p.Startup = s.cfg.Startup
		}
		if _, ok := c.Params["interval"]; !ok {
			p.Interval = s.cfg.Interval
		}
	}
	r := simulate(s.w, s.cfg, p, initial, keepDecisions)
	r.Params, r.Default = c.Params, c.Default
	return r, nil
}

// RunAll simulates every configuration, in parallel, and returns the results in the order
// of cs.
func (s *Simulation) RunAll(cs []PolicyConfig) ([]Result, error) {
	out := make([]Result, len(cs))
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	jobs := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range jobs {
				out[i], errs[i] = s.Run(cs[i], false)
			}
		})
	}
	for i := range cs {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Dominates reports whether a is at least as good as b on both cost and time outside the
// SLA, and strictly better on one.
func Dominates(a, b Result) bool {
	const eps = 1e-9
	le := a.WorkerSeconds <= b.WorkerSeconds+eps && a.WithinSLA >= b.WithinSLA-eps
	lt := a.WorkerSeconds < b.WorkerSeconds-eps || a.WithinSLA > b.WithinSLA+eps
	return le && lt
}

// Best returns, for each policy, the index of its "best" result: the cheapest among those
// with the highest share of time within SLA.
func Best(rs []Result) map[string]int {
	best := map[string]int{}
	for i, r := range rs {
		j, ok := best[r.Policy]
		if !ok || r.WithinSLA > rs[j].WithinSLA+1e-9 ||
			(math.Abs(r.WithinSLA-rs[j].WithinSLA) <= 1e-9 && r.WorkerSeconds < rs[j].WorkerSeconds) {
			best[r.Policy] = i
		}
	}
	return best
}
