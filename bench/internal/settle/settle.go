// Package settle waits, before an idle-pickup measurement, until a server that the
// benchmark loaded has finished its own after-work (RabbitMQ moving a quorum queue's
// write-ahead log to segments, PostgreSQL's checkpoint or autovacuum, Redis's lazy frees),
// so that "idle" pickup is measured on an idle server and not on the previous workload's
// tail.
package settle

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Idle is the CPU share (of one core) under which a server counts as settled.
const Idle = 0.05

// Wait samples, every window, the CPU time of the local processes whose command name is
// one of names (the sum over all of them: PostgreSQL runs one process per connection)
// and returns once two windows in a row used less than Idle of one core, or after max.
// It returns the last window's share and how long it waited. Without /proc (not Linux)
// it returns at once.
func Wait(names []string, window, max time.Duration) (share float64, waited time.Duration) {
	start := time.Now()
	prev, ok := cpuTicks(names)
	if !ok {
		return 0, 0
	}
	quiet := 0
	for time.Since(start) < max {
		time.Sleep(window)
		cur, _ := cpuTicks(names)
		share = float64(cur-prev) / ticksPerSecond / window.Seconds()
		prev = cur
		if share < Idle {
			quiet++
			if quiet == 2 {
				break
			}
		} else {
			quiet = 0
		}
	}
	return share, time.Since(start)
}

// String formats what Wait returned, for a benchmark's log.
func String(share float64, waited time.Duration) string {
	return fmt.Sprintf("server settled after %s (last 1/2 s at %.1f%% of a core)", waited.Round(10*time.Millisecond), 100*share)
}

// ticksPerSecond is USER_HZ, 100 on every Linux architecture that Go supports.
const ticksPerSecond = 100

// cpuTicks sums utime and stime of the processes named one of names.
func cpuTicks(names []string) (int64, bool) {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil || len(stats) == 0 {
		return 0, false
	}
	var sum int64
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the process has exited
		}
		// pid (comm) state ppid ... : comm may hold spaces, so split after the last ')'.
		open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || end < open {
			continue
		}
		comm := string(b[open+1 : end])
		match := false
		for _, n := range names {
			if comm == n {
				match = true
			}
		}
		if !match {
			continue
		}
		f := bytes.Fields(b[end+1:])
		// After the comm: state(0) ppid(1) ... utime(11) stime(12).
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(string(f[11]), 10, 64)
		s, _ := strconv.ParseInt(string(f[12]), 10, 64)
		sum += u + s
	}
	return sum, true
}
