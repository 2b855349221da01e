package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/briskq/brisk/internal/workload"
)

// execSystem is brisk with handlers in Python: tasks go to brisk's Redis broker as for
// "brisk", and the worker is a `brisk worker --exec` process (the brisk command built from
// this repository) whose children run bench/python/brisk_exec_handler.py on python/brisk.py.
// Each child appends "seq ready_ns start_ns" to a file for every task, its start time taken
// in Python as the Celery and RQ handlers take theirs; the harness reads the file and hands
// each record to the workload's handler with the ready time shifted by the reading delay, so
// that pickup latency is the Python handler's start minus the ready time.
type execSystem struct {
	*briskSystem
	brisk, python, handler, lib string
	prefetch                    int // brisk worker --prefetch (-exec-prefetch)
}

// buildBrisk builds the brisk command of the repository at root (in its own module, whose
// dependencies are not all the bench module's) into dir.
func buildBrisk(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "brisk")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/brisk")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build brisk: %v: %s", err, out)
	}
	return bin, nil
}

func newExec(ctx context.Context, cfg *config, bin string) (*execSystem, error) {
	b, err := newBrisk(ctx, cfg.addr, cfg.briskDB)
	if err != nil {
		return nil, err
	}
	lib, err := filepath.Abs(filepath.Join(cfg.pyDir, "..", "..", "python"))
	if err != nil {
		return nil, err
	}
	return &execSystem{briskSystem: b, brisk: bin, python: cfg.python,
		handler: filepath.Join(cfg.pyDir, "brisk_exec_handler.py"), lib: lib, prefetch: cfg.execPrefetch}, nil
}

// StartWorker starts `brisk worker --exec` with workload.Concurrency Python children and
// waits until every child is ready.
func (s *execSystem) StartWorker(ctx context.Context, h workload.Handler) (func() error, error) {
	dir, err := os.MkdirTemp("", "peerbench-exec-")
	if err != nil {
		return nil, err
	}
	out := filepath.Join(dir, "out")
	if err := os.WriteFile(out, nil, 0o644); err != nil {
		return nil, err
	}
	url := fmt.Sprintf("redis://%s/%d?prefix=%s", s.addr, s.db, s.prefix)
	cmd := exec.Command(s.brisk, "worker", "--broker", url, "--queue", s.Queue,
		"--concurrency", strconv.Itoa(workload.Concurrency), "--quiet", "--prefetch", strconv.Itoa(s.prefetch), "--exec", s.python+" "+s.handler)
	cmd.Env = append(os.Environ(), "PB_OUT="+out, "PYTHONPATH="+s.lib)
	var stderr tail
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	rd := &recordReader{path: out, h: h, ctx: ctx}
	stopRead := make(chan struct{})
	readDone := make(chan error, 1)
	go func() { readDone <- rd.run(stopRead) }()
	stop := func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		var err error
		select {
		case err = <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			err = fmt.Errorf("brisk worker did not stop within 30 s of SIGTERM: %v", <-exited)
		}
		close(stopRead)
		if rerr := <-readDone; err == nil {
			err = rerr
		}
		os.RemoveAll(dir)
		if err != nil {
			return fmt.Errorf("%w: %s", err, stderr.String())
		}
		return nil
	}
	deadline := time.Now().Add(60 * time.Second)
	for rd.readyCount() < workload.Concurrency {
		select {
		case err := <-exited:
			exited <- err
			_ = stop()
			return nil, fmt.Errorf("brisk worker exited: %v: %s", err, stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = stop()
			return nil, fmt.Errorf("the %d handler processes were not ready within 60 s: %s", workload.Concurrency, stderr.String())
		}
	}
	var once sync.Once
	var stopErr error
	return func() error { once.Do(func() { stopErr = stop() }); return stopErr }, nil
}

// recordReader follows the handlers' file and hands each record to h.
type recordReader struct {
	path string
	h    workload.Handler
	ctx  context.Context

	mu    sync.Mutex
	ready int
}

func (r *recordReader) readyCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ready
}

// run reads new lines every millisecond until stop is closed, then reads what is left.
func (r *recordReader) run(stop <-chan struct{}) error {
	f, err := os.Open(r.path)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	var partial []byte
	for {
		stopping := false
		select {
		case <-stop:
			stopping = true
		default:
		}
		for {
			line, err := br.ReadBytes('\n')
			if len(line) > 0 && line[len(line)-1] != '\n' { // a line still being written
				partial = append(partial, line...)
			} else if len(line) > 0 {
				if len(partial) > 0 {
					line, partial = append(partial, line...), nil
				}
				if err := r.record(bytes.TrimSpace(line)); err != nil {
					return err
				}
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
		}
		if stopping {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
}

// record handles "ready PID" or "SEQ READY_NS START_NS".
func (r *recordReader) record(line []byte) error {
	f := bytes.Fields(line)
	if len(f) == 2 && string(f[0]) == "ready" {
		r.mu.Lock()
		r.ready++
		r.mu.Unlock()
		return nil
	}
	if len(f) != 3 {
		return fmt.Errorf("bad record %q", line)
	}
	var v [3]int64
	for i := range v {
		n, err := strconv.ParseInt(string(f[i]), 10, 64)
		if err != nil {
			return fmt.Errorf("bad record %q", line)
		}
		v[i] = n
	}
	// The handler computes now − ready: shift ready by the time this record waited to be
	// read, so that the latency is the Python handler's start minus the ready time.
	seq, ready, start := v[0], v[1], v[2]
	now := time.Now()
	shifted := time.Unix(0, ready+now.UnixNano()-start)
	return r.h(r.ctx, workload.Payload(int(seq), shifted, shifted))
}

// runExec runs W1 or W3 against brisk-exec; the other workloads are not run for it.
func (r *runner) runExec(ctx context.Context, w string) error {
	switch w {
	case "W1", "W3":
	default:
		r.skip("brisk-exec", w, "measured for W1 and W3 only (the worker's guarantees are brisk's, measured by the brisk row)")
		return nil
	}
	if r.briskBin == "" {
		dir, err := os.MkdirTemp("", "peerbench-brisk-")
		if err != nil {
			return err
		}
		r.cleanups = append(r.cleanups, func() { os.RemoveAll(dir) })
		root, err := filepath.Abs(filepath.Join(r.cfg.pyDir, "..", ".."))
		if err != nil {
			return err
		}
		if r.briskBin, err = buildBrisk(ctx, root, dir); err != nil {
			return err
		}
	}
	s, err := newExec(ctx, r.cfg, r.briskBin)
	if err != nil {
		return err
	}
	defer func() {
		_ = s.cleanup(context.WithoutCancel(ctx))
		s.close()
	}()
	ru := &workload.Runner{System: s, Progress: os.Stderr}
	var res *workload.Result
	if w == "W1" {
		res, err = ru.W1(ctx, r.cfg.n)
	} else {
		res, err = ru.Pickup(ctx, float64(time.Second/workload.W3Interval), r.cfg.w3Tasks)
	}
	if err != nil {
		return err
	}
	m := result(res.Map())
	if w == "W1" {
		m["tasks"] = 2 * r.cfg.n
	}
	r.set("brisk-exec", w, m)
	return nil
}
