// Package autoscale sizes brisk workers from how long tasks wait (queue latency) and a
// queue's SLA, and simulates that policy against the usual alternatives.
package autoscale

import (
	"fmt"
	"math"
	"time"

	"github.com/briskq/brisk"
)

// Sample is what the controller knows about one queue at one instant.
type Sample struct {
	// Queue is the queue's name.
	Queue string
	// At is when the sample was taken.
	At time.Time
	// Latency is the queue latency: the age of the oldest pending task, 0 when none waits.
	Latency time.Duration
	// SLA is the queue's latency target (0: none declared).
	SLA time.Duration
	// Pending is how many tasks wait for a handler.
	Pending int64
	// ArrivalRate and CompletionRate are tasks per second over the last interval.
	ArrivalRate, CompletionRate float64
	// HandlerTime is the mean handler time of recently completed tasks (0: unknown).
	HandlerTime time.Duration
	// Workers is the current worker count, starting ones included; Serving counts those
	// already serving (a Source that cannot tell reports Workers); Slots is the handlers
	// each runs at once (1 when the controller sizes one process's concurrency).
	Workers, Serving, Slots int
	// StartupLeft is the mean time the starting workers still need before they serve
	// (0: none, or unknown).
	StartupLeft time.Duration
	// Busy is the mean number of busy handler slots over the last interval, all workers.
	Busy float64
	// CPU is the mean CPU utilisation (0–1) of the serving workers over the last interval,
	// negative when unknown.
	CPU float64
	// Paused reports a paused queue: workers take none of its tasks, so the controller
	// counts its backlog as no demand (see Controller).
	Paused bool
}

// Decision is a policy's answer for one sample: how many workers there should be and why.
type Decision struct {
	// At is the sample's time.
	At time.Time
	// Policy names the policy that decided.
	Policy string
	// Current is the count before the decision, Desired the count after it.
	Current, Desired int
	// Reason says in a few words which rule fixed Desired, with the numbers it used.
	Reason string
	// Sample holds the inputs, as sampled (a paused queue's backlog included).
	Sample Sample
	// Err is the error of a sample that failed (the count was kept), nil otherwise. A queue
	// that does not exist gives one wrapping brisk.ErrQueueNotFound.
	Err error
}

// Policy decides a worker count from a sample. Policies keep state between calls (windows,
// history), so one value serves one controller; they are not safe for concurrent use.
type Policy interface {
	// Name is the policy's name: sla, threshold, queue_length, cpu or fixed.
	Name() string
	// Decide returns the desired worker count for sample s taken at now, given the current
	// count. The count is always within the policy's bounds.
	Decide(now time.Time, s Sample, current int) Decision
}

// Bounds are the smallest and largest worker counts a policy may ask for.
type Bounds struct {
	// Min is the smallest count (default 1 when both are 0).
	Min int
	// Max is the largest count (default 100 when both are 0).
	Max int
}

// DefaultBounds are the bounds used when none are given: 1 to 100 workers.
var DefaultBounds = Bounds{Min: 1, Max: 100}

func (b Bounds) orDefault() Bounds {
	if b.Min == 0 && b.Max == 0 {
		return DefaultBounds
	}
	return b
}

// Validate reports bounds that no count can satisfy.
func (b Bounds) Validate() error {
	b = b.orDefault()
	switch {
	case b.Min < 0:
		return invalidf("min %d is negative", b.Min)
	case b.Max < 1:
		return invalidf("max %d is below 1", b.Max)
	case b.Min > b.Max:
		return invalidf("min %d is above max %d", b.Min, b.Max)
	}
	return nil
}

func (b Bounds) clamp(n int) int {
	b = b.orDefault()
	return max(b.Min, min(b.Max, n))
}

// invalidf returns an error wrapping brisk.ErrInvalid with an "autoscale: " message.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("autoscale: %s: %w", fmt.Sprintf(format, args...), brisk.ErrInvalid)
}

func decision(p Policy, b Bounds, now time.Time, s Sample, current, want int, reason string, args ...any) Decision {
	d := Decision{At: now, Policy: p.Name(), Current: current, Desired: b.clamp(want), Sample: s,
		Reason: fmt.Sprintf(reason, args...)}
	if d.Desired != want {
		d.Reason += fmt.Sprintf(" (clamped from %d to [%d, %d])", want, b.orDefault().Min, b.orDefault().Max)
	}
	return d
}

// window keeps recent recommendations so that a count is lowered only when every
// recommendation of the last window agrees (Kubernetes' scale-down stabilisation).
type window struct {
	length time.Duration
	at     []time.Time
	want   []int
}

// add records want at now and returns the largest recommendation within the window.
func (w *window) add(now time.Time, want int) int {
	w.at = append(w.at, now)
	w.want = append(w.want, want)
	i := 0
	for i < len(w.at)-1 && now.Sub(w.at[i]) > w.length {
		i++
	}
	w.at, w.want = w.at[i:], w.want[i:]
	m := want
	for _, v := range w.want {
		m = max(m, v)
	}
	return m
}

// least returns the smallest recommendation within the window.
func (w *window) least() int {
	m := math.MaxInt
	for _, v := range w.want {
		m = min(m, v)
	}
	return m
}

// SLA is brisk's default policy. It sizes the workers from what it measures and what the
// queue promises. With λ the arrival rate (λ̄ smoothed over about 30 s, λ̂ the highest of
// the last Memory), S the mean handler time (smoothed), c the slots per worker, n the
// current count, P the pending count, L the queue latency, T = SLA·Margin the latency it
// plans for, h + Interval = Startup + 2·Interval (how long until a worker asked for
// because of a peak serves: the peak is seen up to two samples after it starts, the first
// may catch only part of it), and λw = max(λ, P/L) the arrival rate of the tasks waiting (they
// arrived within the last L seconds; used when L ≥ min(1 s, Interval) and P ≥ 2, else λ):
//
//	steady   = λ̄·S / (c·u)                    Little's law: busy slots at utilisation u
//	drain    = P·S / (c·T)                     the newest pending task starts within T
//	insure   = λ̂·(1 − SLA·React/(h + Interval))·S / c
//	                                           a repeat of the recent peak, seen up to two
//	                                           samples late, stays under the reaction level
//	                                           until new workers serve (not rounded down)
//	L(s)     = L + s·(1 − n̄·c/(S·λw))         the latency when a worker asked for now serves
//	                                           (s = Startup, n̄ the serving workers plus
//	                                           the starting ones for the part of s they serve)
//	recover  = λw·S/(c·u)                      when SLA·React < L(s) ≤ SLA: the new workers
//	                                           only keep up with the surge (no breach is
//	                                           predicted; the latency stops growing)
//	         = λw·(1 + (L(s) − T)/(SLA − T))·S/c  when L(s) > SLA: the breach has begun;
//	                                           back under T within SLA − T
//	want     = max(ceil(steady − 0.2), ceil(drain − 0.2), ceil(insure), ceil(recover))
//
// The 0.2 of a worker left uncovered is what the latency budget absorbs (a 30 s SLA
// tolerates a short backlog; the recover term catches a deficit that grows). The first
// three terms raise the count only when every recommendation over the last Startup agrees
// (a worker asked for later than that would serve after a short peak is over; the recover
// term covers the SLA meanwhile); the steady and drain terms raise it only when
// L(s + Interval) > SLA·React, i.e. when waiting one more interval would let the latency
// pass the reaction level before the workers asked for then serve, or when the serving
// workers need longer than SLA·React to serve what waits (P·S/(n·c)). The count is lowered
// only when every recommendation of the stabilisation window agrees, by at most half the
// gap per interval; but the recommendations made while a backlog waits (drain's, and
// steady's, whose λ̄ is catching up with the surge) stay in the window only while it
// lasts: once ceil(drain − 0.2) is within what steady and insure ask for and L ≤ T/2, they
// leave it and the count falls at once to what the window's other recommendations hold.
// The recover term is held only for Startup + Interval, long enough for the workers it
// asked for to serve.
type SLA struct {
	Bounds
	// Target is the latency target; 0 uses the sample's SLA, else 30 s.
	Target time.Duration
	// Utilisation is the share of slots the steady term aims to keep busy. Default 0.95:
	// with a latency budget of seconds and handlers of milliseconds, slots can run hot.
	Utilisation float64
	// Margin is the share of the SLA the policy plans to use. Default 0.5.
	Margin float64
	// React is the share of the SLA that the predicted latency must pass before workers are
	// added to recover; insure keeps a repeat of the recent peak under it. Default 0.8.
	React float64
	// Stabilise is the scale-down stabilisation window. Default 60 s.
	Stabilise time.Duration
	// Memory is how long the highest arrival rate is remembered. Default 10 min.
	Memory time.Duration
	// Startup is how long a new worker takes to serve. Default 30 s.
	Startup time.Duration
	// Interval is the controller's sampling interval. Default 10 s.
	Interval time.Duration
	// HandlerTime is used until a sample measures one (and always where the broker cannot
	// see running tasks, as on Celery with Redis, which acks a task before it runs).
	// Default 100 ms.
	HandlerTime time.Duration

	up, down, backlog, peak, rescue window
	rate, ht                        float64 // smoothed λ and S; 0 before the first sample
	last                            time.Time
}

// DefaultSLA is the latency target the sla policy plans for when it has no Target and the
// queue declares no SLA.
const DefaultSLA = 30 * time.Second

// Name returns "sla".
func (p *SLA) Name() string { return "sla" }

// EffectiveSLA returns the latency target the policy plans for on a queue that declares
// the SLA declared (0: none): Target, else declared, else DefaultSLA.
func (p *SLA) EffectiveSLA(declared time.Duration) time.Duration {
	switch {
	case p.Target > 0:
		return p.Target
	case declared > 0:
		return declared
	}
	return DefaultSLA
}

func (p *SLA) defaults() {
	if p.Utilisation <= 0 {
		p.Utilisation = 0.95
	}
	if p.Margin <= 0 || p.Margin >= 1 {
		p.Margin = 0.5
	}
	if p.React <= 0 {
		p.React = 0.8
	}
	if p.Stabilise == 0 {
		p.Stabilise = 60 * time.Second
	}
	if p.Memory == 0 {
		p.Memory = 10 * time.Minute
	}
	if p.Startup == 0 {
		p.Startup = 30 * time.Second
	}
	if p.Interval <= 0 {
		p.Interval = 10 * time.Second
	}
	if p.HandlerTime <= 0 {
		p.HandlerTime = 100 * time.Millisecond
	}
	p.down.length, p.backlog.length, p.peak.length, p.rescue.length = p.Stabilise, p.Stabilise, p.Memory, p.Startup+p.Interval
	p.up.length = p.Startup
}

// smooth moves an exponentially weighted average toward v, with time constant tau.
func smooth(avg, v float64, dt, tau time.Duration, first bool) float64 {
	if first || dt <= 0 {
		return v
	}
	a := 1 - math.Exp(-dt.Seconds()/tau.Seconds())
	return avg + a*(v-avg)
}

// Decide implements Policy.
func (p *SLA) Decide(now time.Time, s Sample, current int) Decision {
	p.defaults()
	sla := p.EffectiveSLA(s.SLA)
	first := p.last.IsZero()
	dt := now.Sub(p.last)
	p.last = now
	p.rate = smooth(p.rate, s.ArrivalRate, dt, 30*time.Second, first)
	if s.HandlerTime > 0 {
		p.ht = smooth(p.ht, s.HandlerTime.Seconds(), dt, 2*time.Minute, p.ht == 0)
	}
	S := p.ht
	if S <= 0 {
		S = p.HandlerTime.Seconds()
	}
	c := float64(max(1, s.Slots))
	L, lam := s.Latency.Seconds(), s.ArrivalRate
	T, h := sla.Seconds()*p.Margin, (p.Startup + p.Interval).Seconds()
	// The peak window holds rates ×1000 as integers.
	peak := float64(p.peak.add(now, int(lam*1000))) / 1000

	steady := p.rate * S / (c * p.Utilisation)
	drain := float64(s.Pending) * S / (c * T)
	// A peak is seen up to two intervals after it starts (the first may catch part of it).
	// Insurance keeps a repeat of it under the reaction level until workers asked for then
	// serve: the level at which recover answers a surge, not the plan T, which is what a
	// backlog is drained to. (With T it held a worker more than the SLA needs between
	// peaks: 5 instead of 4 against 300/s.)
	insure := peak * max(0, 1-sla.Seconds()*p.React/(h+p.Interval.Seconds())) * S / c
	why := "steady"
	b := int(math.Ceil(steady - 0.2))
	ins := int(math.Ceil(insure))
	if ins > b {
		b, why = ins, "insure"
	}
	bd := int(math.Ceil(drain - 0.2))
	if bd > b {
		why = "drain"
	}
	// The tasks waiting arrived within the last L seconds: P/L is their arrival rate, a
	// fresher estimate than the last interval's when a surge began within it.
	lamW := lam
	if L >= min(1, p.Interval.Seconds()) && s.Pending >= 2 {
		lamW = max(lam, float64(s.Pending)/L)
	}
	// predict returns the latency h seconds from now with the present workers (the
	// starting ones serve for the part of h left after their own start-up), the queue
	// head advancing through tasks that arrived at λw.
	serving := float64(s.Serving)
	if s.Serving <= 0 || s.Serving > current {
		serving = float64(current)
	}
	predict := func(h float64) float64 {
		if lamW <= 0 || h <= 0 {
			return L
		}
		starting := (float64(current) - serving) * max(0, h-s.StartupLeft.Seconds()) / h
		return max(0, L+h*(1-(serving+starting)*c/(S*lamW)))
	}
	// Lh: when a worker asked for now would serve; Lnext: when one asked for at the next
	// sample would.
	Lh, Lnext := predict(p.Startup.Seconds()), predict(h)
	// Lback: how long the serving workers take to serve what waits now, the wait of the
	// newest pending task if nothing more arrived. The prediction follows the queue's head;
	// a batch enqueued at once has a young head but may take longer than the SLA to serve.
	Lback := math.Inf(1)
	if serving > 0 {
		Lback = float64(s.Pending) * S / (serving * c)
	}
	// The steady and drain terms raise the count only when waiting one more interval would
	// let the latency pass the reaction level before the workers asked for then serve (the
	// last sample at which a raise is still in time), or when what waits takes the
	// serving workers longer than that: until then the present workers keep the queue
	// within the SLA with the margin the reaction level leaves, and a surge that outlasts
	// them is seen again at the next sample. Insure raises it without condition.
	react := sla.Seconds() * p.React
	rise := max(b, bd)
	if Lnext <= react && Lback <= react && rise > current {
		rise = max(current, ins)
	}
	p.up.add(now, rise)
	// Recommendations made for a backlog hold only while it lasts: once the count the load
	// needs serves what waits within T and the latency is within half the plan, they leave
	// the window and the count falls at once to the largest steady or insure
	// recommendation of the last Stabilise made while no backlog waited. The steady
	// recommendations made during the backlog (λ̄ catching up with the surge) belong to it:
	// a repeat of the surge is what insure covers.
	served := bd <= b && L <= T/2
	var held int
	if served {
		p.backlog.want, p.backlog.at = p.backlog.want[:0], p.backlog.at[:0]
		held = p.down.add(now, b)
	} else {
		held = max(p.down.add(now, ins), p.backlog.add(now, b))
	}
	held = max(held, p.backlog.add(now, bd))
	want := current
	switch r := p.up.least(); {
	case r > current:
		want = r
	case held < current && served:
		want = held
	case held < current:
		// Step down by half the gap (at least one) so that a wrong estimate costs little.
		want = current - max(1, (current-held)/2)
	}
	r := 0
	if Lh > sla.Seconds()*p.React {
		// Without arrivals the backlog itself sets the pace: its tasks came at P/L per second.
		rate := lamW
		if rate == 0 && L > 0 {
			rate = float64(s.Pending) / L
		}
		// Workers that will find the latency within the SLA need only keep up with the
		// surge: the steady count at its rate (the latency then stops growing and the
		// backlog drains with the utilisation's slack). Beyond the SLA, the breach has
		// begun: bring the latency back under T within SLA − T.
		f := 1 / p.Utilisation
		if Lh > sla.Seconds() {
			f = max(f, 1+(Lh-T)/(sla.Seconds()-T))
		}
		r = int(math.Ceil(rate * f * S / c))
	}
	// Workers asked for to recover are kept until they have served for an interval:
	// cancelling them while they start would only delay the next ones.
	if r = p.rescue.add(now, r); r > want {
		want, why = r, "recover"
	}
	return decision(p, p.Bounds, now, s, current, want,
		"%s: λ=%.1f/s (avg %.1f, peak %.1f) S=%.0fms steady=%.2f pending=%d drain=%.2f insure=%.2f latency=%s predicted=%.1fs next=%.1fs held=%d",
		why, lam, p.rate, peak, 1000*S, steady, s.Pending, drain, insure, s.Latency.Round(time.Second/10), Lh, Lnext, held)
}

// Threshold is the Judoscale-style rule: add Step workers while the latency is above
// Upper; remove one after it has stayed below Lower for Window (and one more after each
// further Window).
type Threshold struct {
	Bounds
	Upper, Lower time.Duration
	Step         int
	Window       time.Duration

	below time.Time
}

// Name returns "threshold".
func (p *Threshold) Name() string { return "threshold" }

// Decide implements Policy.
func (p *Threshold) Decide(now time.Time, s Sample, current int) Decision {
	step := max(1, p.Step)
	switch {
	case s.Latency > p.Upper:
		p.below = time.Time{}
		return decision(p, p.Bounds, now, s, current, current+step, "latency %s above %s: +%d", s.Latency.Round(time.Second/10), p.Upper, step)
	case s.Latency < p.Lower:
		if p.below.IsZero() {
			p.below = now
		}
		if now.Sub(p.below) >= p.Window {
			p.below = now
			return decision(p, p.Bounds, now, s, current, current-1, "latency %s below %s for %s: -1", s.Latency.Round(time.Second/10), p.Lower, p.Window)
		}
		return decision(p, p.Bounds, now, s, current, current, "latency %s below %s since %s", s.Latency.Round(time.Second/10), p.Lower, now.Sub(p.below))
	default:
		p.below = time.Time{}
		return decision(p, p.Bounds, now, s, current, current, "latency %s between %s and %s", s.Latency.Round(time.Second/10), p.Lower, p.Upper)
	}
}

// QueueLength is the KEDA-style rule: ceil(pending / PerWorker) workers, lowered only when
// every recommendation of the Stabilise window agrees (the HPA's scale-down window).
type QueueLength struct {
	Bounds
	PerWorker int
	Stabilise time.Duration

	down window
}

// Name returns "queue_length".
func (p *QueueLength) Name() string { return "queue_length" }

// Decide implements Policy.
func (p *QueueLength) Decide(now time.Time, s Sample, current int) Decision {
	per := max(1, p.PerWorker)
	want := int((s.Pending + int64(per) - 1) / int64(per))
	p.down.length = p.Stabilise
	held := p.down.add(now, want)
	return decision(p, p.Bounds, now, s, current, held, "pending %d / %d per worker = %d (held %d)", s.Pending, per, want, held)
}

// CPU is the HPA-style rule on CPU utilisation: ceil(current × cpu / Target), unchanged
// within a 10% tolerance, lowered only when every recommendation of the Stabilise window
// agrees. IO-bound handlers use little CPU, so it sees idle workers behind a long queue.
type CPU struct {
	Bounds
	Target    float64
	Stabilise time.Duration

	down window
}

// Name returns "cpu".
func (p *CPU) Name() string { return "cpu" }

// Decide implements Policy.
func (p *CPU) Decide(now time.Time, s Sample, current int) Decision {
	target := p.Target
	if target <= 0 {
		target = 0.8
	}
	want := current
	if s.CPU >= 0 && current > 0 {
		if r := s.CPU / target; math.Abs(r-1) > 0.1 {
			want = int(math.Ceil(float64(current) * r))
		}
	}
	p.down.length = p.Stabilise
	held := p.down.add(now, want)
	if s.CPU < 0 {
		return decision(p, p.Bounds, now, s, current, held, "cpu unknown, target %.0f%%: %d (held %d)", 100*target, want, held)
	}
	return decision(p, p.Bounds, now, s, current, held, "cpu %.0f%% target %.0f%%: %d (held %d)", 100*s.CPU, 100*target, want, held)
}

// Fixed always asks for N workers.
type Fixed struct {
	Bounds
	N int
}

// Name returns "fixed".
func (p *Fixed) Name() string { return "fixed" }

// Decide implements Policy.
func (p *Fixed) Decide(now time.Time, s Sample, current int) Decision {
	return decision(p, p.Bounds, now, s, current, p.N, "fixed at %d", p.N)
}

// PolicyNames lists the policies NewPolicy knows.
var PolicyNames = []string{"sla", "threshold", "queue_length", "cpu", "fixed"}

// NewPolicy returns the policy called name ("" is "sla") with bounds b and the parameters
// in params (durations in seconds): sla: target, utilisation, margin, stabilise, memory,
// startup, interval, handler_time;
// threshold: upper, lower, step, window; queue_length: per_worker, stabilise; cpu: target,
// stabilise; fixed: n. Missing parameters take their defaults.
func NewPolicy(name string, b Bounds, params map[string]float64) (Policy, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	known := map[string][]string{
		"sla": {"target", "utilisation", "margin", "react", "stabilise", "memory", "startup", "interval", "handler_time"}, "threshold": {"upper", "lower", "step", "window"},
		"queue_length": {"per_worker", "stabilise"}, "cpu": {"target", "stabilise"}, "fixed": {"n"},
	}
	if name == "" {
		name = "sla"
	}
	keys, ok := known[name]
	if !ok {
		return nil, invalidf("unknown policy %q (want sla, threshold, queue_length, cpu or fixed)", name)
	}
	for k, v := range params {
		if !contains(keys, k) {
			return nil, invalidf("policy %s has no parameter %q", name, k)
		}
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, invalidf("policy %s: parameter %s=%v is not a non-negative number", name, k, v)
		}
	}
	get := func(k string, def float64) float64 {
		if v, ok := params[k]; ok {
			return v
		}
		return def
	}
	sec := func(k string, def float64) time.Duration {
		return time.Duration(get(k, def) * float64(time.Second))
	}
	switch name {
	case "sla":
		p := &SLA{Bounds: b, Target: sec("target", 0), Utilisation: get("utilisation", 0.95),
			Margin: get("margin", 0.5), React: get("react", 0.8), Stabilise: sec("stabilise", 60), Memory: sec("memory", 600), Startup: sec("startup", 30), Interval: sec("interval", 10),
			HandlerTime: sec("handler_time", 0)}
		if p.Utilisation <= 0 || p.Utilisation > 1 {
			return nil, invalidf("sla: utilisation %v is not in (0, 1]", p.Utilisation)
		}
		if p.Margin <= 0 || p.Margin >= 1 {
			return nil, invalidf("sla: margin %v is not in (0, 1)", p.Margin)
		}
		return p, nil
	case "threshold":
		p := &Threshold{Bounds: b, Upper: sec("upper", 10), Lower: sec("lower", 1), Step: int(get("step", 1)), Window: sec("window", 60)}
		if p.Lower > p.Upper {
			return nil, invalidf("threshold: lower %s is above upper %s", p.Lower, p.Upper)
		}
		return p, nil
	case "queue_length":
		return &QueueLength{Bounds: b, PerWorker: int(get("per_worker", 100)), Stabilise: sec("stabilise", 300)}, nil
	case "cpu":
		t := get("target", 0.8)
		if t <= 0 || t > 1 {
			return nil, invalidf("cpu: target %v is not in (0, 1]", t)
		}
		return &CPU{Bounds: b, Target: t, Stabilise: sec("stabilise", 300)}, nil
	default:
		return &Fixed{Bounds: b, N: int(get("n", float64(b.orDefault().Min)))}, nil
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
