package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/briskq/brisk/internal/workload"
)

type row struct {
	key, field, label string
	kind              string // "rate" (/s), "ms", "s", "n", "bool", "x" (plain number), "mib"
}

func (r *runner) rows() []row {
	rows := []row{
		{"W1", "tasks", "W1 tasks drained", "n"},
		{"W1", "enqueue_per_s", "W1 enqueue, one call each (/s)", "rate"},
		{"W1", "enqueue_batch_per_s", "W1 enqueue, batches of 1,000 (/s)", "rate"},
		{"W1", "enqueue_cmds_per_task", "W1 Redis commands sent per single enqueue", "x"},
		{"W1", "drain_per_s", "W1 drain, 1 worker (/s)", "rate"},
		{"W1", "worker_cmds_per_task", "W1 Redis commands sent per task by the worker", "x"},
		{"W1", "server_scripts_per_task", "W1 Lua scripts run per task (INFO commandstats)", "x"},
		{"W1", "server_other_cmds_per_task", "W1 other commands per task, incl. inside scripts", "x"},
		{"W1", "server_cpu_us_per_task", "W1 Redis CPU per task drained (µs, INFO cpu)", "x"},
	}
	var keys []string
	for _, m := range r.res {
		for k := range m {
			if strings.HasPrefix(k, "W2@") && !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	sort.Slice(keys, func(i, j int) bool { return rateOf(keys[i]) < rateOf(keys[j]) })
	for _, k := range keys {
		rows = append(rows,
			row{k, "achieved_rate", k + " achieved rate (/s)", "rate"},
			row{k, "pickup_p50_ms", k + " pickup p50 (ms)", "ms"},
			row{k, "pickup_p90_ms", k + " pickup p90 (ms)", "ms"},
			row{k, "pickup_p99_ms", k + " pickup p99 (ms)", "ms"},
			row{k, "pickup_max_ms", k + " pickup max (ms)", "ms"},
			row{k, "kept_up", k + " kept up", "bool"})
	}
	rows = append(rows,
		row{"W3", "pickup_p50_ms", "W3 idle pickup p50 (ms)", "ms"},
		row{"W3", "pickup_p99_ms", "W3 idle pickup p99 (ms)", "ms"},
		row{"W3", "pickup_max_ms", "W3 idle pickup max (ms)", "ms"},
		row{"W4", "lost", "W4 lost", "n"},
		row{"W4", "not_done_at_end", "W4 not done when the wait ended", "n"},
		row{"W4", "interrupted", "W4 interrupted by the kill", "n"},
		row{"W4", "duplicates", "W4 run twice", "n"},
		row{"W4", "redelivery_s", "W4 kill → last interrupted task restarted (s)", "s"},
		row{"W4-lease", "lost", "W4 no reaping (lease expiry): lost", "n"},
		row{"W4-lease", "duplicates", "W4 no reaping: run twice", "n"},
		row{"W4-lease", "redelivery_s", "W4 no reaping: kill → restarted (s)", "s"},
		row{"W5", "late_p50_ms", "W5 lateness p50 (ms)", "ms"},
		row{"W5", "late_p99_ms", "W5 lateness p99 (ms)", "ms"},
		row{"W5", "late_max_ms", "W5 lateness max (ms)", "ms"},
		row{"MEM", "mem_per_10k_mib", "Redis memory per 10,000 pending tasks (MiB)", "mib"},
	)
	return rows
}

func rateOf(k string) float64 {
	var v float64
	fmt.Sscanf(strings.TrimPrefix(k, "W2@"), "%g", &v)
	return v
}

func (r *runner) value(sys string, rw row) (any, bool) {
	m, ok := r.res[sys][rw.key]
	if !ok {
		return nil, false
	}
	v, ok := m[rw.field]
	return v, ok
}

func num(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, !math.IsNaN(x)
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	}
	return 0, false
}

func format(v any, kind string) string {
	if v == nil {
		return "—"
	}
	if b, ok := v.(bool); ok {
		return map[bool]string{true: "yes", false: "**no**"}[b]
	}
	f, ok := num(v)
	if !ok {
		return fmt.Sprint(v)
	}
	switch kind {
	case "rate":
		return commas(f)
	case "n":
		return commas(f)
	case "ms", "s", "x", "mib":
		switch {
		case f >= 100:
			return commas(f)
		case f >= 10:
			return fmt.Sprintf("%.1f", f)
		default:
			return fmt.Sprintf("%.3g", f)
		}
	}
	return fmt.Sprint(v)
}

// commas formats f rounded to an integer with thousands separators.
func commas(f float64) string {
	s := fmt.Sprintf("%.0f", f)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func (r *runner) print(w io.Writer) {
	cfg := r.cfg
	fmt.Fprintf(w, "\n## peerbench %s UTC, %s\n\n", r.started.UTC().Format("2006-01-02 15:04"), time.Since(r.started).Round(time.Second))
	fmt.Fprintf(w, "Redis %s; W1 n=%d (drain 2n; Celery n=%d, drain n; rq-simple n=%d, rq-fork n=%d); handlers: %d per Go worker and per Celery threads worker, 2 Celery prefork processes, 1 per RQ worker; payload %d bytes.\n",
		cfg.addr, cfg.n, min(cfg.n, cfg.nCelery), min(cfg.n, cfg.nRQ), min(cfg.n, cfg.nRQFork), workload.Concurrency, workload.PayloadSize)
	if cfg.prefetchWait > 0 {
		fmt.Fprintf(w, "brisk's in-process worker runs with PrefetchWait %s (-prefetch-wait).\n", cfg.prefetchWait)
	}
	fmt.Fprintf(w, "Ratio columns are brisk ÷ that peer: above 1 is brisk higher (better for rates, worse for latencies).\n\n")
	peers := []string{}
	for _, s := range cfg.systems {
		if s != "brisk" {
			peers = append(peers, s)
		}
	}
	hasBrisk := slices.Contains(cfg.systems, "brisk")
	hdr := append([]string{"figure"}, cfg.systems...)
	if hasBrisk {
		for _, p := range peers {
			hdr = append(hdr, "÷"+p)
		}
	}
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(hdr, " | "), strings.Repeat(" --- |", len(hdr)))
	for _, rw := range r.rows() {
		cells := []string{rw.label}
		any := false
		for _, s := range cfg.systems {
			v, ok := r.value(s, rw)
			if ok {
				any = true
				cells = append(cells, format(v, rw.kind))
			} else if _, sk := r.skipped[s][strings.SplitN(rw.key, "@", 2)[0]]; sk {
				cells = append(cells, "n/a")
			} else {
				cells = append(cells, "")
			}
		}
		if !any {
			continue
		}
		if hasBrisk {
			bv, _ := r.value("brisk", rw)
			for _, p := range peers {
				pv, _ := r.value(p, rw)
				cells = append(cells, ratio(bv, pv, rw.kind))
			}
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	var notes []string
	for _, s := range cfg.systems {
		keys := []string{}
		for k := range r.skipped[s] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			notes = append(notes, fmt.Sprintf("- %s %s: %s", s, k, r.skipped[s][k]))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintf(w, "\nNot run (n/a):\n%s\n", strings.Join(notes, "\n"))
	}
	r.printLimit(w)
	r.printTargets(w)
}

func ratio(a, b any, kind string) string {
	if kind == "bool" || kind == "n" {
		return ""
	}
	x, ok1 := num(a)
	y, ok2 := num(b)
	if !ok1 || !ok2 || x <= 0 || y <= 0 { // a negative lateness (a task started early) has no ratio
		return ""
	}
	q := x / y
	switch {
	case q >= 100:
		return fmt.Sprintf("%.0f×", q)
	case q >= 10:
		return fmt.Sprintf("%.1f×", q)
	case q >= 0.01:
		return fmt.Sprintf("%.2f×", q)
	default:
		return fmt.Sprintf("%.2g×", q)
	}
}

func (r *runner) printLimit(w io.Writer) {
	if r.limit == nil {
		return
	}
	fmt.Fprintf(w, "\n### Redis limit\n\n`redis-benchmark -q -t lpush,lpop,set,get -n %d` on the same Redis, in this run:\n\n", r.cfg.rbN)
	if ping, ok := r.limit["serial"]["ping"]; ok {
		fmt.Fprintf(w, "One caller waiting for each reply (go-redis, one connection): %s PINGs/s, the ceiling of any enqueue of one round trip made that way (W1's one call each).\n\n", commas(ping))
	}
	fmt.Fprintf(w, "| pipeline | lpush | lpop | set | get | mean ops/s |\n| --- | --- | --- | --- | --- | --- |\n")
	means := map[string]float64{}
	for _, p := range []string{"P1", "P16"} {
		res := r.limit[p]
		var sum float64
		cells := []string{map[string]string{"P1": "none", "P16": "-P 16"}[p]}
		for _, t := range []string{"lpush", "lpop", "set", "get"} {
			cells = append(cells, commas(res[t]))
			sum += res[t]
		}
		means[p] = sum / 4
		cells = append(cells, commas(means[p]))
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	w1, ok := r.res["brisk"]["W1"]
	if !ok {
		return
	}
	drain, _ := num(w1["drain_per_s"])
	sent, _ := num(w1["worker_cmds_per_task"])
	scripts, _ := num(w1["server_scripts_per_task"])
	other, _ := num(w1["server_other_cmds_per_task"])
	fmt.Fprintf(w, "\nbrisk's W1 drain ran %s tasks/s. Its worker sent %.2f commands per task (an EVALSHA counts one; reserves and acks are batched): %s commands/s, %.0f%% of the unpipelined redis-benchmark mean (%s/s), which bounds a client that waits for each reply. The server executed %.2f Lua scripts and %.2f other commands per task (INFO commandstats, which counts the commands run inside scripts under their own names): %s commands/s, %.0f%% of the pipelined mean (%s/s), which bounds what Redis itself can execute.\n",
		commas(drain), sent, commas(drain*sent), 100*drain*sent/means["P1"], commas(means["P1"]),
		scripts, other, commas(drain*(scripts+other)), 100*drain*(scripts+other)/means["P16"], commas(means["P16"]))
	if bd, ok := w1["server_cmd_breakdown"].(map[string]float64); ok {
		keys := make([]string, 0, len(bd))
		for k := range bd {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return bd[keys[i]] > bd[keys[j]] })
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %.3g", k, bd[k]))
		}
		fmt.Fprintf(w, "Per task during brisk's drain, by command (server-wide INFO commandstats delta, so anything else on this Redis counts too): %s.\n", strings.Join(parts, ", "))
	}
}

func (r *runner) printTargets(w io.Writer) {
	_, b := r.res["brisk"]
	_, e := r.res["brisk-exec"]
	if !b && !e {
		return
	}
	fmt.Fprintf(w, "\n### Targets\n\n")
	check := func(ok bool) string { return map[bool]string{true: "✔", false: "✘"}[ok] }
	get := func(sys, key, field string) (float64, bool) {
		v, ok := r.res[sys][key][field]
		if !ok {
			return 0, false
		}
		return num(v)
	}
	// brisk worker --exec with a Python handler: 3× Celery's best W1 drain, W3 p50 < 5 ms.
	if x, ok := get("brisk-exec", "W1", "drain_per_s"); ok {
		best, who := 0.0, ""
		for _, p := range []string{"celery-prefork", "celery-threads"} {
			if v, ok := get(p, "W1", "drain_per_s"); ok && v > best {
				best, who = v, p
			}
		}
		if who != "" {
			fmt.Fprintf(w, "- brisk-exec W1 drain ≥ 3× Celery's best (%s): %s/s ÷ %s/s = %.2f× %s\n", who, commas(x), commas(best), x/best, check(x >= 3*best))
		}
	}
	if p50, ok := get("brisk-exec", "W3", "pickup_p50_ms"); ok {
		fmt.Fprintf(w, "- brisk-exec W3 idle pickup p50 < 5 ms: %.3g ms %s\n", p50, check(p50 < 5))
	}
	if b, ok := get("brisk", "W1", "drain_per_s"); ok {
		for _, p := range []struct {
			sys    string
			factor float64
		}{{"asynq", 3}, {"celery-prefork", 10}, {"celery-threads", 10}} {
			if v, ok := get(p.sys, "W1", "drain_per_s"); ok {
				fmt.Fprintf(w, "- W1 drain ≥ %g× %s: %s/s ÷ %s/s = %.2f× %s\n", p.factor, p.sys, commas(b), commas(v), b/v, check(b >= p.factor*v))
			}
		}
	}
	if b, ok := get("brisk", "W1", "enqueue_per_s"); ok {
		if a, ok := get("asynq", "W1", "enqueue_per_s"); ok {
			fmt.Fprintf(w, "- W1 enqueue, one call each, ≥ 1.2× asynq: %s/s ÷ %s/s = %.2f× %s", commas(b), commas(a), b/a, check(b >= 1.2*a))
			if ping, ok := r.limit["serial"]["ping"]; ok {
				fmt.Fprintf(w, " (one PING round trip, one caller: %s/s = %.2f× asynq, %.0f%% of it reached by brisk)", commas(ping), ping/a, 100*b/ping)
			}
			fmt.Fprintln(w)
		}
	}
	if p50, ok := get("brisk", "W3", "pickup_p50_ms"); ok {
		p99, _ := get("brisk", "W3", "pickup_p99_ms")
		fmt.Fprintf(w, "- W3 idle pickup p50 < 1 ms: %.3g ms %s; p99 < 5 ms: %.3g ms %s", p50, check(p50 < 1), p99, check(p99 < 5))
		if a, ok := get("asynq", "W3", "pickup_p50_ms"); ok {
			a99, _ := get("asynq", "W3", "pickup_p99_ms")
			fmt.Fprintf(w, " (asynq: %s / %s ms)", format(a, "ms"), format(a99, "ms"))
		}
		fmt.Fprintln(w)
	}
	if m, ok := r.res["brisk"]["W2@2000"]; ok {
		p99, _ := num(m["pickup_p99_ms"])
		ku, _ := m["kept_up"].(bool)
		fmt.Fprintf(w, "- W2 at 2,000/s kept up with p99 < 20 ms: kept up %v, p99 %.3g ms %s\n", ku, p99, check(ku && p99 < 20))
	}
	for _, k := range []string{"W4", "W4-lease"} {
		if m, ok := r.res["brisk"][k]; ok {
			red, rok := num(m["redelivery_s"])
			lost, lok := num(m["lost"])
			fmt.Fprintf(w, "- %s restarted within 15 s and nothing lost: %s s, lost %s %s", k, format(m["redelivery_s"], "s"), format(m["lost"], "n"), check(rok && lok && red < 15 && lost == 0))
			if k == "W4" {
				if a, ok := r.res["asynq"]["W4"]; ok {
					fmt.Fprintf(w, " (asynq: %s s, finished within the wait: %v)", format(a["redelivery_s"], "s"), a["finished"])
				}
			}
			fmt.Fprintln(w)
		}
	}
	if p99, ok := get("brisk", "W5", "late_p99_ms"); ok {
		fmt.Fprintf(w, "- W5 lateness p99 < 20 ms: %.3g ms %s\n", p99, check(p99 < 20))
	}
}
