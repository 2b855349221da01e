package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/briskq/brisk/internal/workload"
)

// pySystem is a Python peer run through a script of bench/python: the script runs its own
// worker as a subprocess, does the workload and prints one JSON object on its last line.
type pySystem struct {
	name   string // celery-prefork, celery-threads, rq-simple, rq-fork
	script string // celery_bench.py or rq_bench.py
	args   []string
	db     int
}

func pySystemFor(name string, db int) *pySystem {
	switch name {
	case "celery-prefork":
		return &pySystem{name, "celery_bench.py", []string{"--pool", "prefork", "--concurrency", "2"}, db}
	case "celery-threads":
		return &pySystem{name, "celery_bench.py", []string{"--pool", "threads", "--concurrency", strconv.Itoa(workload.Concurrency)}, db}
	case "rq-simple":
		return &pySystem{name, "rq_bench.py", []string{"--worker-class", "simple"}, db}
	case "rq-fork":
		return &pySystem{name, "rq_bench.py", []string{"--worker-class", "fork"}, db}
	}
	return nil
}

// run runs workload with extra flags (--n, --rate, …) and returns its JSON object.
func (p *pySystem) run(ctx context.Context, cfg *config, workload string, extra ...string) (result, error) {
	script := filepath.Join(cfg.pyDir, p.script)
	args := append([]string{script, "--workload", workload,
		"--redis", fmt.Sprintf("redis://%s/%d", cfg.addr, p.db)}, p.args...)
	args = append(args, extra...)
	cmd := exec.CommandContext(ctx, cfg.python, args...)
	cmd.Dir = cfg.pyDir
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	var stderr tail
	cmd.Stderr = &stderr
	err := cmd.Run()
	var last string
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "{") {
			last = line
		}
	}
	if err != nil || last == "" {
		return nil, fmt.Errorf("%s %s: %v: %s", p.script, strings.Join(args[1:], " "), err, stderr.String())
	}
	r := result{}
	if err := json.Unmarshal([]byte(last), &r); err != nil {
		return nil, fmt.Errorf("%s: bad JSON %q: %w", p.script, last, err)
	}
	if e, ok := r["error"]; ok {
		return nil, fmt.Errorf("%s: %v", p.script, e)
	}
	return r, nil
}

// tail keeps the last 2 KiB written to it.
type tail struct{ b []byte }

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 2048 {
		t.b = t.b[len(t.b)-2048:]
	}
	return len(p), nil
}

func (t *tail) String() string { return strings.TrimSpace(string(t.b)) }

// findPyDir returns bench/python from the current directory (bench/ or the repository).
func findPyDir() string {
	for _, d := range []string{"python", "bench/python", "../../python"} {
		if _, err := os.Stat(filepath.Join(d, "celery_bench.py")); err == nil {
			abs, _ := filepath.Abs(d)
			return abs
		}
	}
	return "python"
}
