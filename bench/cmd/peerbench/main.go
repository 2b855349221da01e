// Command peerbench runs the workloads W1–W5 (docs/workloads.md) against brisk on Redis and its
// peers (asynq v0.26, Celery 5, RQ) on the same Redis in one run, and prints one table
// with the ratios brisk ÷ peer. See bench/README.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/briskq/brisk/bench/internal/asynqrun"
	"github.com/briskq/brisk/bench/internal/benchflag"
	"github.com/briskq/brisk/bench/internal/settle"
	"github.com/briskq/brisk/internal/workload"
)

type config struct {
	addr                                      string
	briskDB, asynqDB, celeryDB, rqDB, benchDB int
	systems, workloads                        []string
	n, nCelery, nRQ, nRQFork                  int
	w2Rates, pyW2Rates                        []float64
	w2Seconds, w3Tasks, w4Tasks, w5Tasks      int
	w4WaitBrisk, w4WaitAsynq                  time.Duration
	prefetchWait                              time.Duration
	memN, rbN                                 int
	python, pyDir, jsonOut                    string
	execPrefetch                              int
}

var allSystems = []string{"brisk", "brisk-exec", "asynq", "asynq-tuned", "celery-prefork", "celery-threads", "rq-simple", "rq-fork"}
var allWorkloads = []string{"W1", "W2", "W3", "W4", "W5", "MEM", "LIMIT"}

func main() {
	if len(os.Args) > 2 && os.Args[1] == "-role" && os.Args[2] == "worker" {
		if err := runChild(os.Args[3:]); err != nil {
			fmt.Fprintln(os.Stderr, "peerbench worker:", err)
			os.Exit(1)
		}
		return
	}
	cfg := &config{}
	systems := flag.String("systems", "brisk,brisk-exec,asynq,celery-prefork,celery-threads,rq-simple,rq-fork", "comma-separated `list` of: "+strings.Join(allSystems, ", "))
	workloads := flag.String("workloads", strings.Join(allWorkloads, ","), "comma-separated `list` of: W1, W2, W3, W4, W5, MEM (Redis memory per 10k pending tasks), LIMIT (redis-benchmark and brisk's share of it; needs W1)")
	flag.StringVar(&cfg.addr, "redis", "127.0.0.1:6379", "Redis `host:port` shared by every system")
	flag.IntVar(&cfg.briskDB, "brisk-db", 0, "Redis database of brisk (a random key prefix peerbench_XXXXXXXX, deleted after each workload)")
	flag.IntVar(&cfg.asynqDB, "asynq-db", 11, "Redis database of asynq: must be empty; emptied after each workload")
	flag.IntVar(&cfg.celeryDB, "celery-db", 12, "Redis database of Celery: must be empty; emptied after each workload")
	flag.IntVar(&cfg.benchDB, "bench-db", 14, "Redis database of redis-benchmark's keys (LIMIT): must be empty; emptied after it")
	flag.IntVar(&cfg.rqDB, "rq-db", 13, "Redis database of RQ: must be empty; emptied after each workload")
	flag.IntVar(&cfg.n, "n", 20000, "W1: tasks enqueued one call each, and as many again in batches (drain 2n)")
	flag.IntVar(&cfg.nCelery, "n-celery", 10000, "W1: n for Celery (about 1,000 tasks/s; it has no batch enqueue, so its worker drains n, not 2n)")
	flag.IntVar(&cfg.nRQ, "n-rq", 5000, "W1: n for rq-simple (about 600 tasks/s; drain 2n)")
	flag.IntVar(&cfg.nRQFork, "n-rqfork", 300, "W1: n for rq-fork (a fork per task, about 20 tasks/s; drain 2n)")
	w2 := flag.String("w2-rates", "500,2000", "W2: producer `rates` per second")
	pyW2 := flag.String("py-w2-rates", "500", "W2: rates for the Celery and RQ SimpleWorker variants (empty: none)")
	flag.IntVar(&cfg.w2Seconds, "w2-seconds", workload.W2Seconds, "W2: seconds of producing per rate")
	flag.IntVar(&cfg.w3Tasks, "w3-tasks", workload.W3Tasks, "W3: tasks, one per 200 ms")
	flag.IntVar(&cfg.w4Tasks, "w4-tasks", 2000, "W4: tasks of 50 ms")
	flag.DurationVar(&cfg.prefetchWait, "prefetch-wait", 0, "brisk: the in-process worker's PrefetchWait (0: off, brisk's default)")
	flag.DurationVar(&cfg.w4WaitBrisk, "w4-wait", 2*time.Minute, "W4: longest wait after the kill for brisk")
	flag.DurationVar(&cfg.w4WaitAsynq, "w4-wait-asynq", 200*time.Second, "W4: longest wait after the kill for asynq (its recoverer needs 1-3 min)")
	flag.IntVar(&cfg.w5Tasks, "w5-tasks", 2000, "W5: tasks delayed 0-10 s")
	flag.IntVar(&cfg.memN, "mem-n", 10000, "MEM: pending tasks enqueued to measure Redis memory")
	flag.IntVar(&cfg.rbN, "rb-n", 200000, "LIMIT: redis-benchmark -n")
	flag.StringVar(&cfg.python, "python", "/usr/bin/python3", "Python with Debian's python3-celery and python3-rq")
	flag.StringVar(&cfg.pyDir, "pydir", findPyDir(), "directory of the Python scripts (bench/python)")
	flag.IntVar(&cfg.execPrefetch, "exec-prefetch", 0, "brisk-exec: the worker's --prefetch (`N` tasks reserved beyond its free children; brisk's default is 0)")
	flag.StringVar(&cfg.jsonOut, "json", "", "also write every figure to `file` as JSON")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of this process (the Go systems' producers and in-process workers) to `file`")
	flag.Parse()
	var err error
	if cfg.systems, err = benchflag.OneOf(*systems, "system", allSystems); err != nil {
		fatalf("%v", err)
	}
	if cfg.workloads, err = benchflag.OneOf(strings.ToUpper(*workloads), "workload", allWorkloads); err != nil {
		fatalf("%v", err)
	}
	if cfg.w2Rates, err = benchflag.Rates(*w2); err != nil {
		fatalf("-w2-rates: %v", err)
	}
	if cfg.pyW2Rates, err = benchflag.Rates(*pyW2); err != nil {
		fatalf("-py-w2-rates: %v", err)
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fatalf("-cpuprofile: %v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatalf("-cpuprofile: %v", err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	run := &runner{cfg: cfg, res: map[string]map[string]result{}, skipped: map[string]map[string]string{}}
	if err := run.all(ctx); err != nil {
		pprof.StopCPUProfile()
		fatalf("%v", err)
	}
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "peerbench: "+format+"\n", a...)
	os.Exit(1)
}

func progress(format string, a ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05")+" "+format+"\n", a...)
}

type runner struct {
	cfg     *config
	rs      *redisStats
	res     map[string]map[string]result // system → row key (W1, W2@500, …) → figures
	skipped map[string]map[string]string // system → row key → why not run
	limit   map[string]map[string]float64
	started time.Time
	// briskBin is the brisk command built for brisk-exec, and cleanups what to remove at
	// the end.
	briskBin string
	cleanups []func()
}

func (r *runner) set(sys, key string, res result) {
	if r.res[sys] == nil {
		r.res[sys] = map[string]result{}
	}
	r.res[sys][key] = res
}

func (r *runner) skip(sys, key, why string) {
	if r.skipped[sys] == nil {
		r.skipped[sys] = map[string]string{}
	}
	r.skipped[sys][key] = why
	progress("%s %s: not run: %s", sys, key, why)
}

func (r *runner) has(w string) bool { return slices.Contains(r.cfg.workloads, w) }

func (r *runner) all(ctx context.Context) error {
	cfg := r.cfg
	r.started = time.Now()
	defer func() {
		for _, c := range r.cleanups {
			c()
		}
	}()
	r.rs = &redisStats{addr: cfg.addr, rdb: redis.NewClient(&redis.Options{Addr: cfg.addr})}
	defer r.rs.rdb.Close()
	if err := r.rs.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis %s: %w", cfg.addr, err)
	}
	dbs := map[string]int{}
	if r.has("LIMIT") {
		dbs["bench"] = cfg.benchDB
	}
	for _, s := range cfg.systems {
		switch {
		case strings.HasPrefix(s, "asynq"):
			dbs["asynq"] = cfg.asynqDB
		case strings.HasPrefix(s, "celery"):
			dbs["celery"] = cfg.celeryDB
		case strings.HasPrefix(s, "rq"):
			dbs["rq"] = cfg.rqDB
		}
	}
	for who, db := range dbs {
		if db == cfg.briskDB {
			return fmt.Errorf("-%s-db %d is brisk's database; give it one of its own", who, db)
		}
		if err := checkEmpty(ctx, cfg.addr, db, who); err != nil {
			return err
		}
	}
	defer func() {
		for _, db := range dbs {
			_ = flushDB(context.WithoutCancel(ctx), cfg.addr, db)
		}
	}()
	info, _ := r.rs.rdb.Info(ctx, "server").Result()
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "redis_version:"); ok {
			progress("Redis %s at %s; systems %s; workloads %s", v, cfg.addr, strings.Join(cfg.systems, ","), strings.Join(cfg.workloads, ","))
		}
	}

	for _, w := range cfg.workloads {
		if w == "LIMIT" {
			continue
		}
		for _, s := range cfg.systems {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if strings.HasPrefix(s, "asynq") {
				asynqrun.Complaints() // forget what an earlier workload's shutdown logged
			}
			if err := r.one(ctx, s, w); err != nil {
				if c := asynqrun.Complaints(); c != "" && strings.HasPrefix(s, "asynq") {
					err = fmt.Errorf("%w (asynq logged: %s)", err, c)
				}
				progress("%s %s: FAILED: %v", s, w, err)
				r.skip(s, w, "failed: "+firstLine(err.Error()))
			}
		}
	}
	if r.has("LIMIT") {
		if err := r.redisLimit(ctx); err != nil {
			progress("LIMIT: FAILED: %v", err)
		}
	}
	r.print(os.Stdout)
	if cfg.jsonOut != "" {
		b, _ := json.MarshalIndent(map[string]any{"results": r.res, "not_run": r.skipped, "redis_benchmark": r.limit,
			"started": r.started.UTC().Format(time.RFC3339), "seconds": workload.Round(time.Since(r.started).Seconds(), 1)}, "", "  ")
		if err := os.WriteFile(cfg.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// one runs workload w against system s.
func (r *runner) one(ctx context.Context, s, w string) error {
	cfg := r.cfg
	progress("%s %s", s, w)
	if py := pySystemFor(s, map[bool]int{true: cfg.celeryDB, false: cfg.rqDB}[strings.HasPrefix(s, "celery")]); py != nil {
		defer flushDB(context.WithoutCancel(ctx), cfg.addr, py.db)
		return r.onePython(ctx, py, w)
	}
	if s == "brisk-exec" {
		return r.runExec(ctx, w)
	}
	var sys goSystem
	switch s {
	case "brisk":
		b, err := newBrisk(ctx, cfg.addr, cfg.briskDB)
		if err != nil {
			return err
		}
		b.Worker.PrefetchWait = cfg.prefetchWait
		sys = b
	case "asynq", "asynq-tuned":
		sys = newAsynq(cfg.addr, cfg.asynqDB, s == "asynq-tuned")
	}
	defer func() {
		if err := sys.cleanup(context.WithoutCancel(ctx)); err != nil {
			progress("%s: cleanup: %v", s, err)
		}
		sys.close()
	}()
	switch w {
	case "W1":
		res, err := runW1(ctx, sys, cfg.n, r.rs)
		if err != nil {
			return err
		}
		r.set(s, "W1", res)
	case "W2":
		for _, rate := range cfg.w2Rates {
			res, err := runPickup(ctx, sys, rate, int(math.Round(rate*float64(cfg.w2Seconds))))
			if err != nil {
				return err
			}
			r.set(s, fmt.Sprintf("W2@%g", rate), res)
			if err := sys.cleanup(ctx); err != nil {
				return err
			}
		}
	case "W3":
		// Idle pickup on an idle server (Redis frees the previous workload's keys lazily).
		progress("%s", settle.String(settle.Wait([]string{"redis-server"}, 500*time.Millisecond, 30*time.Second)))
		res, err := runPickup(ctx, sys, float64(time.Second/workload.W3Interval), cfg.w3Tasks)
		if err != nil {
			return err
		}
		r.set(s, "W3", res)
	case "W4":
		wait := cfg.w4WaitBrisk
		if s != "brisk" {
			wait = cfg.w4WaitAsynq
		}
		res, err := runW4(ctx, sys, cfg.w4Tasks, wait)
		if err != nil {
			return err
		}
		r.set(s, "W4", res)
		if b, ok := sys.(*briskSystem); ok {
			// The path where the killed worker's host is gone: no reaping, the lease
			// (10 s by default) expires.
			if err := sys.cleanup(ctx); err != nil {
				return err
			}
			b.keepDead()
			progress("%s W4 again with reaping off (lease expiry)", s)
			res, err := runW4(ctx, sys, cfg.w4Tasks, wait)
			if err != nil {
				return err
			}
			r.set(s, "W4-lease", res)
		}
	case "W5":
		res, err := runW5(ctx, sys, cfg.w5Tasks)
		if err != nil {
			return err
		}
		r.set(s, "W5", res)
	case "MEM":
		res, err := r.memory(ctx, func() error {
			_, err := newRunner(sys).EnqueueAll(ctx, 0, cfg.memN, nil)
			return err
		})
		if err != nil {
			return err
		}
		r.set(s, "MEM", res)
	}
	return nil
}

// memory measures used_memory around fill, which enqueues cfg.memN pending tasks.
func (r *runner) memory(ctx context.Context, fill func() error) (result, error) {
	before, err := r.rs.settledMemory(ctx)
	if err != nil {
		return nil, err
	}
	if err := fill(); err != nil {
		return nil, err
	}
	after, err := r.rs.settledMemory(ctx)
	if err != nil {
		return nil, err
	}
	per10k := float64(after-before) * 10000 / float64(r.cfg.memN)
	return result{"tasks": r.cfg.memN, "mem_per_10k_mib": workload.Round(per10k/(1<<20), 2),
		"bytes_per_task": workload.Round(float64(after-before)/float64(r.cfg.memN), 0)}, nil
}

func (r *runner) onePython(ctx context.Context, py *pySystem, w string) error {
	cfg := r.cfg
	switch w {
	case "W1":
		n := cfg.n
		switch py.name {
		case "celery-prefork", "celery-threads":
			n = min(n, cfg.nCelery)
		case "rq-simple":
			n = min(n, cfg.nRQ)
		case "rq-fork":
			n = min(n, cfg.nRQFork)
		}
		res, err := py.run(ctx, cfg, "W1", "--n", strconv.Itoa(n))
		if err != nil {
			return err
		}
		r.set(py.name, "W1", res)
	case "W2":
		if py.name == "rq-fork" {
			r.skip(py.name, "W2", "a fork per task runs about 20 tasks/s, far below the 500/s rate")
			return nil
		}
		for _, rate := range cfg.pyW2Rates {
			res, err := py.run(ctx, cfg, "W2", "--rate", fmt.Sprint(rate), "--n", strconv.Itoa(int(math.Round(rate*float64(cfg.w2Seconds)))))
			if err != nil {
				return err
			}
			r.set(py.name, fmt.Sprintf("W2@%g", rate), res)
			_ = flushDB(ctx, cfg.addr, py.db)
		}
	case "W3":
		res, err := py.run(ctx, cfg, "W3", "--rate", "5", "--n", strconv.Itoa(cfg.w3Tasks))
		if err != nil {
			return err
		}
		r.set(py.name, "W3", res)
	case "W4":
		why := "not implemented for the Python peers"
		if strings.HasPrefix(py.name, "celery") {
			why = "by default Celery acknowledges a task as it starts it, so the tasks running at the kill are lost; those it had prefetched (and, with acks_late, the running ones) come back only after the Redis transport's visibility_timeout, 1 h by default"
		} else {
			why = "RQ does not run a killed worker's job again unless it was enqueued with Retry: its StartedJobRegistry entry expires (job timeout 180 s by default) and the next registry clean-up (a worker's maintenance, every 10 min) moves it to the FailedJobRegistry"
		}
		r.skip(py.name, "W4", why)
	case "W5":
		n := cfg.w5Tasks
		if py.name == "rq-fork" {
			n = min(n, 200) // 2000 forks take 100 s: lateness would be the backlog's
		}
		res, err := py.run(ctx, cfg, "W5", "--n", strconv.Itoa(n))
		if err != nil {
			return err
		}
		r.set(py.name, "W5", res)
	case "MEM":
		res, err := r.memory(ctx, func() error {
			_, err := py.run(ctx, cfg, "MEM", "--n", strconv.Itoa(cfg.memN))
			return err
		})
		if err != nil {
			return err
		}
		r.set(py.name, "MEM", res)
	}
	return nil
}

// redisLimit runs redis-benchmark unpipelined and with -P 16.
func (r *runner) redisLimit(ctx context.Context) error {
	host, port, err := net.SplitHostPort(r.cfg.addr)
	if err != nil {
		return err
	}
	r.limit = map[string]map[string]float64{}
	progress("PING, one caller, %d round trips", r.cfg.n)
	ping, err := r.rs.serialPings(ctx, r.cfg.n)
	if err != nil {
		return err
	}
	r.limit["serial"] = map[string]float64{"ping": ping}
	for _, p := range []int{1, 16} {
		progress("redis-benchmark -P %d -n %d", p, r.cfg.rbN)
		res, err := redisBenchmark(ctx, host, port, r.cfg.benchDB, r.cfg.rbN, p)
		_ = flushDB(ctx, r.cfg.addr, r.cfg.benchDB)
		if err != nil {
			return err
		}
		r.limit[fmt.Sprintf("P%d", p)] = res
	}
	return nil
}
