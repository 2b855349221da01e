// Command pgbench runs the workloads W1–W5 (docs/workloads.md) against brisk's PostgreSQL
// broker and River (riverqueue/river with riverpgxv5, with its default settings and with
// FetchCooldown 1 ms) on the same database in one run, and prints one table with the ratios
// brisk ÷ River. With -workloads GROWTH it runs W2 at a fixed rate for minutes on brisk
// alone and reports pickup latency and table sizes minute by minute. See bench/README.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/bench/internal/benchflag"
	"github.com/briskq/brisk/bench/internal/settle"
	"github.com/briskq/brisk/broker/pgbroker"
	"github.com/briskq/brisk/internal/workload"
)

var stderr io.Writer = os.Stderr

type config struct {
	url                string
	systems, workloads []string
	n, nRiverDefault   int
	w3Tasks, w4Tasks   int
	w5Tasks            int
	w2Rates            []float64
	w2Seconds          int
	growthRate         float64
	growthMinutes      int
	growthProducers    int
	w2Producers        int
	prefetchWait       time.Duration
	briskParams        string
	jsonOut            string
}

var allSystems = []string{"brisk", "river-1ms", "river-default", "pg-minimal"}
var allWorkloads = []string{"W1", "W2", "W3", "W4", "W5", "FLOOR", "GROWTH"}

func main() {
	if len(os.Args) > 2 && os.Args[1] == "-role" && os.Args[2] == "worker" {
		if err := runChild(os.Args[3:]); err != nil {
			fmt.Fprintln(os.Stderr, "pgbench worker:", err)
			os.Exit(1)
		}
		return
	}
	cfg := &config{}
	flag.StringVar(&cfg.url, "url", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PostgreSQL `URL` shared by every system (each gets a schema of its own, dropped after each workload)")
	systems := flag.String("systems", strings.Join(allSystems, ","), "comma-separated `list` of: "+strings.Join(allSystems, ", "))
	workloads := flag.String("workloads", "W1,W2,W3,W4,W5,FLOOR", "comma-separated `list` of: "+strings.Join(allWorkloads, ", ")+" (W4 and GROWTH run brisk only; FLOOR is PostgreSQL's own idle pickup, no queue system)")
	flag.IntVar(&cfg.n, "n", workload.W1Tasks, "W1: tasks enqueued one call each, and as many again in batches (drain 2n)")
	flag.IntVar(&cfg.nRiverDefault, "n-river-default", 2000, "W1: n for river-default (it drains about 80 tasks/s)")
	w2 := flag.String("w2-rates", "500,2000", "W2: producer `rates` per second")
	flag.IntVar(&cfg.w2Producers, "w2-producers", 1, "W2: enqueue calls in flight at once (the same schedule; more callers model concurrent requests)")
	flag.IntVar(&cfg.w2Seconds, "w2-seconds", workload.W2Seconds, "W2: seconds of producing per rate")
	flag.IntVar(&cfg.w3Tasks, "w3-tasks", workload.W3Tasks, "W3: tasks, one per 200 ms")
	flag.IntVar(&cfg.w4Tasks, "w4-tasks", workload.W4Tasks, "W4: tasks of 50 ms")
	flag.IntVar(&cfg.w5Tasks, "w5-tasks", workload.W5Tasks, "W5: tasks delayed 0-10 s")
	flag.Float64Var(&cfg.growthRate, "growth-rate", 2000, "GROWTH: tasks per second")
	flag.IntVar(&cfg.growthMinutes, "growth-minutes", 10, "GROWTH: minutes of producing")
	flag.IntVar(&cfg.growthProducers, "growth-producers", 4, "GROWTH: producer goroutines sharing the rate (one durable commit per enqueue each)")
	flag.DurationVar(&cfg.prefetchWait, "prefetch-wait", 0, "brisk: the worker's PrefetchWait (0: off, brisk's default)")
	flag.StringVar(&cfg.briskParams, "brisk-params", "", "brisk: `query` parameters of brisk's own added to its broker URL only, such as vacuum=off (the database URL goes to River and the harness's pool too, which reject them)")
	flag.StringVar(&cfg.jsonOut, "json", "", "also write every figure to `file` as JSON")
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
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, cfg); err != nil {
		fatalf("%v", err)
	}
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "pgbench: "+format+"\n", a...)
	os.Exit(1)
}

func progress(format string, a ...any) {
	fmt.Fprintf(stderr, time.Now().Format("15:04:05")+" "+format+"\n", a...)
}

// results[workload key][system] are the figures of one run.
type results map[string]map[string]map[string]any

func (r results) put(key, system string, m map[string]any) {
	if r[key] == nil {
		r[key] = map[string]map[string]any{}
	}
	r[key][system] = m
}

func run(ctx context.Context, cfg *config) error {
	admin, err := pgxpool.New(ctx, cfg.url)
	if err != nil {
		return err
	}
	defer admin.Close()
	res := results{}
	var growth []minute
	var fl *floor
	open := func(name string) (system, error) {
		switch name {
		case "brisk":
			s, err := newBrisk(ctx, cfg.url, cfg.briskParams, admin)
			if err != nil {
				return nil, err
			}
			if cfg.prefetchWait > 0 {
				s.Worker.PrefetchWait = cfg.prefetchWait
				progress("brisk's worker runs with PrefetchWait %s", cfg.prefetchWait)
			}
			return s, nil
		case "river-1ms":
			return newRiver(ctx, admin, time.Millisecond)
		case "pg-minimal":
			return newMinimal(ctx, admin)
		default:
			return newRiver(ctx, admin, 0)
		}
	}
	for _, w := range cfg.workloads {
		if w == "FLOOR" {
			progress("%s", settle.String(settle.Wait([]string{"postgres"}, 500*time.Millisecond, 30*time.Second)))
			progress("FLOOR: PostgreSQL's own idle pickup, %d rows", cfg.w3Tasks)
			if fl, err = runFloor(ctx, admin, cfg.w3Tasks); err != nil {
				return err
			}
			continue
		}
		if w == "GROWTH" {
			s, err := newBrisk(ctx, cfg.url, cfg.briskParams, admin)
			if err != nil {
				return err
			}
			progress("GROWTH brisk: W2 at %g/s for %d min", cfg.growthRate, cfg.growthMinutes)
			growth, err = runGrowth(ctx, s, cfg.growthRate, cfg.growthMinutes, cfg.growthProducers)
			if derr := s.drop(context.WithoutCancel(ctx)); err == nil {
				err = derr
			}
			if err != nil {
				return fmt.Errorf("GROWTH: %w", err)
			}
			continue
		}
		for _, name := range cfg.systems {
			if w == "W4" && name != "brisk" {
				continue // River rescues the jobs of a lost worker after RescueStuckJobsAfter (1 h by default)
			}
			if name == "pg-minimal" && w != "W2" && w != "W3" {
				continue // a floor for pickup only: no batches, delays or leases
			}
			keys := []string{w}
			if w == "W2" {
				keys = nil
				for _, rate := range cfg.w2Rates {
					keys = append(keys, fmt.Sprintf("W2@%g", rate))
				}
			}
			for _, key := range keys {
				s, err := open(name)
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				progress("%s %s", key, name)
				m, err := runOne(ctx, cfg, key, s)
				if derr := s.drop(context.WithoutCancel(ctx)); err == nil {
					err = derr
				}
				if err != nil {
					return fmt.Errorf("%s %s: %w", key, name, err)
				}
				res.put(key, name, m)
			}
		}
	}
	if len(res) > 0 {
		printTable(os.Stdout, cfg, res)
	}
	if fl != nil {
		w3, _ := res["W3"]["brisk"]["pickup_p50_ms"].(float64)
		fl.print(os.Stdout, w3)
	}
	if len(growth) > 0 {
		printGrowth(os.Stdout, cfg, growth)
	}
	if cfg.jsonOut != "" {
		data, err := json.MarshalIndent(map[string]any{"results": res, "growth": growth, "floor": fl, "date": time.Now().UTC().Format(time.RFC3339)}, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(cfg.jsonOut, data, 0o644)
	}
	return nil
}

func runOne(ctx context.Context, cfg *config, key string, s system) (map[string]any, error) {
	ru := &workload.Runner{System: s, Progress: stderr}
	var (
		r   *workload.Result
		err error
	)
	switch {
	case key == "W1":
		n := cfg.n
		if _, ok := s.(*riverSystem); ok && s.(*riverSystem).cooldown == 0 {
			n = cfg.nRiverDefault
		}
		r, err = ru.W1(ctx, n)
		if err == nil {
			r.Add("tasks", "tasks drained", 2*n, "")
		}
		if err == nil {
			table, index, serr := s.sizes(ctx)
			if serr != nil {
				return nil, serr
			}
			r.Add("table_mib_after", "tables after the drain (MiB)", workload.Round(float64(table)/(1<<20), 2), "")
			r.Add("index_mib_after", "indexes after the drain (MiB)", workload.Round(float64(index)/(1<<20), 2), "")
		}
	case strings.HasPrefix(key, "W2@"):
		rate, _ := strconv.ParseFloat(strings.TrimPrefix(key, "W2@"), 64)
		ru.Producers = cfg.w2Producers
		r, err = ru.Pickup(ctx, rate, int(rate)*cfg.w2Seconds)
	case key == "W3":
		// Idle pickup on an idle server: after the previous workload's checkpoint,
		// autovacuum and WAL writes.
		progress("%s", settle.String(settle.Wait([]string{"postgres"}, 500*time.Millisecond, 30*time.Second)))
		r, err = ru.Pickup(ctx, 1/workload.W3Interval.Seconds(), cfg.w3Tasks)
	case key == "W4":
		bs := s.(*briskSystem)
		r, err = ru.W4(ctx, cfg.w4Tasks, workload.W4Wait, func() (*exec.Cmd, error) {
			exe, err := os.Executable()
			if err != nil {
				return nil, err
			}
			return exec.Command(exe, "-role", "worker", "-url", bs.url), nil
		})
	case key == "W5":
		r, err = ru.W5(ctx, cfg.w5Tasks)
	}
	if err != nil {
		return nil, err
	}
	return r.Map(), nil
}

// runChild is a W4 worker process: a brisk worker on the queue of the run until its
// standard input ends.
func runChild(args []string) error {
	fs := flag.NewFlagSet("pgbench -role worker", flag.ContinueOnError)
	url := fs.String("url", "", "broker URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx := context.Background()
	b, err := pgbroker.Open(ctx, *url)
	if err != nil {
		return err
	}
	defer b.Close()
	s := &workload.Brisk{Client: brisk.NewClient(b), Inspector: brisk.NewInspector(b), Queue: "pgbench"}
	return workload.ServeCrashWorker(ctx, os.Stdin, os.Stdout, workload.W4Sleep, s.StartWorker)
}
