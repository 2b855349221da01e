package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/briskq/brisk/autoscale"
	"github.com/briskq/brisk/autoscale/simulate"
	"github.com/briskq/brisk/internal/humanize"
)

var simulateCmd = &command{
	name:     "simulate",
	synopsis: "--trace steady|burst|diurnal|spiky | --trace-file FILE.csv [flags]",
	summary:  "compare autoscaling policies on a simulated arrival trace",
	detail: `
Runs brisk's default autoscaling policy (sla) and the baselines, each swept over its
parameters (threshold: Judoscale-style; queue_length: KEDA-style; cpu: HPA-style on the
CPU of IO-bound handlers; fixed: 1..N workers), on the same simulated tasks: Poisson
arrivals following the trace, log-normal handler times (mean 200 ms, sigma 0.5), workers
with --slots handlers each that serve --startup seconds after they are asked for, a
graceful stop, one FIFO queue, a decision every 10 s. The same --seed gives the same
numbers.

A trace file has lines "second,arrivals_per_second" (a step function from second 0).

The table shows every sla configuration and, per baseline, its best configuration (the
cheapest of those with the most time within SLA), its cheapest one that is at least as
often within SLA as the default, and its usual setting (threshold 10 s/2 s, step 1,
window 60 s; queue_length 100 per worker; cpu 80%); --all shows every configuration. --json prints an array
with one object per configuration: policy, params, within_sla, p95_latency_s,
p99_latency_s, worker_seconds, actions, slots, work_seconds, and default (true on the
default sla row only). --plot writes an SVG of latency and workers over time for the
default sla policy and the best configuration of each baseline.

Example:
  brisk simulate --trace burst --plot burst.svg`,
	run: runSimulate,
}

// simulateJSON is one element of "brisk simulate --json": part of the scripting contract
// (docs/workloads.md), so keys are only ever added.
type simulateJSON struct {
	Policy        string             `json:"policy"`
	Params        map[string]float64 `json:"params"`
	WithinSLA     float64            `json:"within_sla"`
	P95LatencyS   float64            `json:"p95_latency_s"`
	P99LatencyS   float64            `json:"p99_latency_s"`
	WorkerSeconds float64            `json:"worker_seconds"`
	Actions       int                `json:"actions"`
	Slots         int                `json:"slots"`
	WorkSeconds   float64            `json:"work_seconds"`
	Default       bool               `json:"default,omitempty"`
}

func roundTo(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func runSimulate(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	traceName := fs.String("trace", "", "simulate the built-in trace `NAME`: steady, burst, diurnal or spiky")
	traceFile := fs.String("trace-file", "", "simulate the trace in `FILE` (lines second,arrivals_per_second)")
	asJSON := fs.Bool("json", false, "print a JSON array instead of a table")
	all := fs.Bool("all", false, "show every configuration in the table")
	sla := fs.Float64("sla", 30, "the queue's SLA in `SECONDS`")
	startup := fs.Float64("startup", 30, "`SECONDS` a new worker takes before it serves")
	slots := fs.Int("slots", 10, "handlers per worker (`N`)")
	seed := fs.Uint64("seed", 1, "random seed (`N`) for arrivals, handler times and spike times")
	plot := fs.String("plot", "", "write an SVG plot of latency and workers over time to `FILE`")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	switch {
	case (*traceName == "") == (*traceFile == ""):
		return usagef("give one of --trace NAME or --trace-file FILE")
	case !(*sla > 0) || math.IsInf(*sla, 0) || *sla > 86400:
		return usagef("--sla %v is not a number of seconds above 0 and at most 86400", *sla)
	case !(*startup >= 0) || math.IsInf(*startup, 0) || *startup > 86400:
		return usagef("--startup %v is not a number of seconds from 0 to 86400", *startup)
	case *slots < 1 || *slots > 10000:
		return usagef("--slots %d is not from 1 to 10000", *slots)
	}
	var tr *simulate.Trace
	if *traceName != "" {
		if tr, err = simulate.BuiltinTrace(*traceName, *seed); err != nil {
			return usagef("unknown trace %q (want steady, burst, diurnal or spiky)", *traceName)
		}
	} else {
		f, err := os.Open(*traceFile)
		if err != nil {
			return fmt.Errorf("trace file: %w", err)
		}
		tr, err = simulate.ReadTrace(filepath.Base(*traceFile), f)
		f.Close()
		if err != nil {
			return err
		}
	}
	cfg := simulate.Config{
		SLA:   time.Duration(*sla * float64(time.Second)),
		Slots: *slots, Seed: *seed,
		Startup: time.Duration(*startup * float64(time.Second)),
	}
	if cfg.Startup == 0 {
		cfg.Startup = -1 // none (0 would mean the default)
	}
	sim := simulate.New(tr, cfg)
	// The fixed sweep goes up to a little above what the trace's peak needs.
	peak := 0.0
	for _, r := range tr.Rate {
		peak = max(peak, r)
	}
	maxFixed := min(autoscale.DefaultBounds.Max, max(3, int(math.Ceil(peak*0.2/float64(*slots)*1.25))))
	rs, err := sim.RunAll(simulate.Sweep(maxFixed))
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if *plot != "" {
		if err := writePlot(*plot, tr, *sla, rs); err != nil {
			return err
		}
	}
	if *asJSON {
		out := make([]simulateJSON, len(rs))
		for i, r := range rs {
			params := r.Params
			if params == nil {
				params = map[string]float64{}
			}
			out[i] = simulateJSON{
				Policy: r.Policy, Params: params, WithinSLA: roundTo(r.WithinSLA, 6),
				P95LatencyS: roundTo(r.P95Latency, 2), P99LatencyS: roundTo(r.P99Latency, 2),
				WorkerSeconds: roundTo(r.WorkerSeconds, 1), Actions: r.Actions, Slots: r.Slots,
				WorkSeconds: roundTo(r.WorkSeconds, 1), Default: r.Default,
			}
		}
		return writeJSON(e.stdout, out, true)
	}
	return simulateTable(e.stdout, tr, cfg, sim.Tasks(), rs, *all)
}

func writePlot(path string, tr *simulate.Trace, sla float64, rs []simulate.Result) error {
	var picked []simulate.Result
	for _, r := range rs {
		if r.Default {
			picked = append(picked, r)
		}
	}
	best := simulate.Best(rs)
	for _, p := range autoscale.PolicyNames[1:] {
		if i, ok := best[p]; ok {
			picked = append(picked, rs[i])
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	title := fmt.Sprintf("brisk simulate: trace %s, SLA %gs (default sla policy and the best of each baseline)", tr.Name, sla)
	err = simulate.WritePlot(f, title, sla, picked)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

// typical are the baselines' usual settings, shown in the table whatever their figures:
// Judoscale-like thresholds, KEDA's queue length with the HPA's 5-minute scale-down
// window, the HPA's CPU target of 80%.
var typical = map[string]string{
	"threshold":    "lower=2 step=1 upper=10 window=60",
	"queue_length": "per_worker=100 stabilise=300",
	"cpu":          "stabilise=300 target=0.8",
}

func simulateTable(w io.Writer, tr *simulate.Trace, cfg simulate.Config, tasks int, rs []simulate.Result, all bool) error {
	var def simulate.Result
	for _, r := range rs {
		if r.Default {
			def = r
		}
	}
	show := make([]bool, len(rs))
	for i, r := range rs {
		show[i] = all || r.Policy == "sla"
	}
	for _, i := range simulate.Best(rs) {
		show[i] = true
	}
	for i, r := range rs {
		if typical[r.Policy] == simulate.ParamString(r.Params) {
			show[i] = true
		}
	}
	// Per baseline, the cheapest configuration at least as often within SLA as the default.
	cheapest := map[string]int{}
	for i, r := range rs {
		if r.Policy == "sla" || r.WithinSLA < def.WithinSLA-1e-9 {
			continue
		}
		if j, ok := cheapest[r.Policy]; !ok || r.WorkerSeconds < rs[j].WorkerSeconds {
			cheapest[r.Policy] = i
		}
	}
	for _, i := range cheapest {
		show[i] = true
	}
	startup := "none"
	if cfg.Startup > 0 {
		startup = humanize.Duration(cfg.Startup)
	}
	fmt.Fprintf(w, "trace %s: %s, %d tasks; SLA %s, start-up %s, %d slots per worker, seed %d\n\n",
		tr.Name, humanize.Duration(time.Duration(tr.Seconds)*time.Second), tasks, humanize.Duration(cfg.SLA), startup, cfg.Slots, cfg.Seed)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "POLICY\tPARAMS\tWITHIN SLA\tP95 LAT\tP99 LAT\tWORKER-S\tACTIONS\t\n")
	var dominated []string
	for i, r := range rs {
		if simulate.Dominates(r, def) && r.Policy != "sla" {
			dominated = append(dominated, r.Policy+" "+simulate.ParamString(r.Params))
		}
		if !show[i] {
			continue
		}
		name := r.Policy
		if r.Default {
			name += " *"
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2f%%\t%.1fs\t%.1fs\t%.0f\t%d\t\n", name, simulate.ParamString(r.Params),
			100*r.WithinSLA, r.P95Latency, r.P99Latency, r.WorkerSeconds, r.Actions)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n* default. Work: %.0f handler-seconds (÷ %d slots = %.0f worker-seconds at the least).\n",
		def.WorkSeconds, cfg.Slots, def.WorkSeconds/float64(cfg.Slots))
	if len(dominated) == 0 {
		fmt.Fprintf(w, "No baseline configuration is both as cheap and as often within SLA as the default (one of them strictly).\n")
	} else {
		fmt.Fprintf(w, "Baseline configurations that beat the default on cost and time within SLA: %s.\n", strings.Join(dominated, "; "))
	}
	if j, ok := cheapest["threshold"]; ok {
		fmt.Fprintf(w, "The default uses %.0f%% of the worker-seconds of the cheapest threshold configuration that is as often within SLA.\n",
			100*def.WorkerSeconds/rs[j].WorkerSeconds)
	} else if j, ok := simulate.Best(rs)["threshold"]; ok {
		fmt.Fprintf(w, "No threshold configuration is as often within SLA as the default; the best (%.2f%%) costs %.0f worker-seconds, the default %.0f%% of that.\n",
			100*rs[j].WithinSLA, rs[j].WorkerSeconds, 100*def.WorkerSeconds/rs[j].WorkerSeconds)
	}
	return nil
}
