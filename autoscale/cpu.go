package autoscale

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat: USER_HZ, 100 on Linux whatever
// the kernel's own tick rate.
const userHZ = 100

// ProcessCPU measures the CPU that worker processes use, from /proc (Linux): for each
// process it sums the user and system time of every process in its process group (a
// ProcessActuator starts each worker as the leader of its own group, so a worker's children
// count as its own) plus the time of the children they have reaped. Utilisation is the mean,
// over the processes that ran for the whole interval since the previous measure, of their
// CPU seconds per second: 1 is one core busy (the HPA's CPU utilisation with a request of one
// core per worker). It is safe for concurrent use.
type ProcessCPU struct {
	pids func() []int
	proc string // the proc file system's root, "/proc"
	now  func() time.Time

	mu   sync.Mutex
	last map[string]cpuMark
}

type cpuMark struct {
	at    time.Time
	ticks map[int]uint64 // group leader pid -> CPU time of its group, in USER_HZ ticks
}

// NewProcessCPU returns a meter for the processes that pids lists when it is called (e.g.
// (*ProcessActuator).PIDs; zeros are skipped). It fails when /proc cannot be read, that is
// on a system other than Linux.
func NewProcessCPU(pids func() []int) (*ProcessCPU, error) {
	p := &ProcessCPU{pids: pids, proc: "/proc", now: time.Now, last: map[string]cpuMark{}}
	if _, err := os.ReadFile(filepath.Join(p.proc, "self", "stat")); err != nil {
		return nil, fmt.Errorf("autoscale: cannot measure the CPU of worker processes: %w", err)
	}
	return p, nil
}

// Utilisation returns the mean CPU utilisation (1: one core) of the processes since the
// previous call with the same key (callers that sample at their own pace, such as the
// controllers of several queues, each use their own key). It returns -1 when it cannot
// tell: at the first call of a key, or when no process ran through the whole interval.
func (p *ProcessCPU) Utilisation(key string) (float64, error) {
	groups := map[int]bool{}
	for _, pid := range p.pids() {
		if pid > 0 {
			groups[pid] = true
		}
	}
	ticks, err := p.groupTicks(groups)
	if err != nil {
		return -1, err
	}
	mark := cpuMark{at: p.now(), ticks: ticks}
	p.mu.Lock()
	prev, ok := p.last[key]
	p.last[key] = mark
	p.mu.Unlock()
	dt := mark.at.Sub(prev.at).Seconds()
	if !ok || dt <= 0 {
		return -1, nil
	}
	var used float64
	n := 0
	for pid, t := range mark.ticks {
		before, was := prev.ticks[pid]
		if !was || t < before {
			continue // started (or restarted under the same pid) within the interval
		}
		used += float64(t-before) / userHZ
		n++
	}
	if n == 0 {
		return -1, nil
	}
	return used / dt / float64(n), nil
}

// groupTicks sums, per process group whose leader is in groups, the user and system time
// of its live members and of the children they have reaped.
func (p *ProcessCPU) groupTicks(groups map[int]bool) (map[int]uint64, error) {
	out := map[int]uint64{}
	if len(groups) == 0 {
		return out, nil
	}
	entries, err := os.ReadDir(p.proc)
	if err != nil {
		return nil, fmt.Errorf("autoscale: cpu: %w", err)
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(p.proc, e.Name(), "stat"))
		if err != nil {
			continue // gone since the listing
		}
		st, err := parseStat(string(b))
		if err != nil || !groups[st.pgrp] {
			continue
		}
		out[st.pgrp] += st.utime + st.stime + st.cutime + st.cstime
	}
	return out, nil
}

type procStat struct {
	pgrp                         int
	utime, stime, cutime, cstime uint64
}

// parseStat reads the fields of a /proc/<pid>/stat line that ProcessCPU needs. The command
// name (the second field) is in parentheses and may itself contain spaces and parentheses,
// so the fields are counted from the last ')'.
func parseStat(line string) (procStat, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("autoscale: bad stat line %q", line)
	}
	// After ")": state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
	// utime stime cutime cstime ...
	f := strings.Fields(line[i+1:])
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("autoscale: bad stat line %q", line)
	}
	var st procStat
	var err error
	if st.pgrp, err = strconv.Atoi(f[2]); err != nil {
		return procStat{}, fmt.Errorf("autoscale: bad stat line %q", line)
	}
	for j, dst := range []*uint64{&st.utime, &st.stime, &st.cutime, &st.cstime} {
		v, err := strconv.ParseInt(f[11+j], 10, 64)
		if err != nil || v < 0 {
			return procStat{}, fmt.Errorf("autoscale: bad stat line %q", line)
		}
		*dst = uint64(v)
	}
	return st, nil
}

// WithCPU returns a Source that samples src and fills the sample's CPU from cpu (per
// queue, over the time since the queue's previous sample). A CPU that cannot be measured is
// left unknown (-1), and the cpu policy then keeps the count.
func WithCPU(src Source, cpu *ProcessCPU) Source {
	return cpuSource{src, cpu}
}

type cpuSource struct {
	src Source
	cpu *ProcessCPU
}

func (c cpuSource) Sample(ctx context.Context, queue string) (Sample, error) {
	s, err := c.src.Sample(ctx, queue)
	if err != nil {
		return s, err
	}
	s.CPU = -1
	if u, err := c.cpu.Utilisation(queue); err == nil {
		s.CPU = u
	}
	return s, nil
}
