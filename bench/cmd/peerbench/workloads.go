package main

import (
	"context"
	"os"
	"os/exec"
	"time"

	"github.com/briskq/brisk/internal/workload"
)

// The Go systems run the workloads of internal/workload, the same code as `brisk bench`;
// peerbench adds the Redis commands each side sends per task around W1's phases.

func newRunner(s goSystem) *workload.Runner {
	return &workload.Runner{System: s, Progress: os.Stderr}
}

// runW1 is the drain workload (workload.Runner.W1) with the producer's and the worker's
// Redis commands per task, and the server's commands per task by kind.
func runW1(ctx context.Context, s goSystem, n int, rs *redisStats) (result, error) {
	var enq0, work0 int64
	var cpu0 float64
	var before map[string]int64
	ru := newRunner(s)
	ru.Hooks = func(phase string, after bool, r *workload.Result) error {
		var err error
		switch {
		case phase == "enqueue" && !after:
			enq0 = s.enqueueCalls()
		case phase == "enqueue":
			r.Add("enqueue_cmds_per_task", "producer commands per single enqueue", workload.Round(float64(s.enqueueCalls()-enq0)/float64(n), 3), "")
		case phase == "drain" && !after:
			before, err = rs.commandStats(ctx)
			work0 = s.workerCalls()
			if err == nil {
				cpu0, err = rs.cpu(ctx)
			}
		case phase == "drain":
			cpu1, err := rs.cpu(ctx)
			if err != nil {
				return err
			}
			r.Add("server_cpu_us_per_task", "server CPU per task (µs)", workload.Round((cpu1-cpu0)/float64(2*n)*1e6, 3), "µs")
			var afterStats map[string]int64
			if afterStats, err = rs.commandStats(ctx); err != nil {
				return err
			}
			r.Add("worker_cmds_per_task", "worker commands per task", workload.Round(float64(s.workerCalls()-work0)/float64(2*n), 3), "")
			d := diffStats(before, afterStats)
			scripts := d["evalsha"] + d["eval"] + d["fcall"] + d["evalsha_ro"] + d["eval_ro"]
			var other int64
			for k, v := range d {
				switch k {
				case "evalsha", "eval", "fcall", "evalsha_ro", "eval_ro", "info":
				default:
					other += v
				}
			}
			r.Add("server_scripts_per_task", "server scripts per task", workload.Round(float64(scripts)/float64(2*n), 3), "")
			r.Add("server_other_cmds_per_task", "server other commands per task", workload.Round(float64(other)/float64(2*n), 3), "")
			r.Add("server_cmd_breakdown", "server commands per task", perTask(d, 2*n), "")
		}
		return err
	}
	res, err := ru.W1(ctx, n)
	if err != nil {
		return nil, err
	}
	m := result(res.Map())
	m["tasks"] = 2 * n
	return m, nil
}

func perTask(d map[string]int64, n int) map[string]float64 {
	out := map[string]float64{}
	for k, v := range d {
		if k == "info" {
			continue
		}
		if x := workload.Round(float64(v)/float64(n), 3); x > 0 {
			out[k] = x
		}
	}
	return out
}

// runPickup is W2 and W3 (workload.Runner.Pickup).
func runPickup(ctx context.Context, s goSystem, rate float64, total int) (result, error) {
	res, err := newRunner(s).Pickup(ctx, rate, total)
	if err != nil {
		return nil, err
	}
	return res.Map(), nil
}

// runW4 is the crash workload (workload.Runner.W4) with worker processes that are this
// program with -role worker and the system's flags.
func runW4(ctx context.Context, s goSystem, n int, wait time.Duration) (result, error) {
	res, err := newRunner(s).W4(ctx, n, wait, func() (*exec.Cmd, error) {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		return exec.Command(exe, append([]string{"-role", "worker"}, s.childArgs()...)...), nil
	})
	if err != nil {
		return nil, err
	}
	m := result(res.Map())
	if m["lost"] == nil {
		delete(m, "lost") // the wait ended first: not_done_at_end says how many
	}
	m["finished"] = m["not_done_at_end"] == nil
	return m, nil
}

// runW5 is the timely workload (workload.Runner.W5).
func runW5(ctx context.Context, s goSystem, n int) (result, error) {
	res, err := newRunner(s).W5(ctx, n)
	if err != nil {
		return nil, err
	}
	return res.Map(), nil
}
