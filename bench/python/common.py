"""Shared by celery_bench.py and rq_bench.py: payloads, the result file, percentiles,
the rate-limited producer and the JSON result line. Same definitions as bench/cmd/peerbench."""

import json
import math
import os
import shutil
import signal
import subprocess
import tempfile
import sys
import random
import time

PAYLOAD_SIZE = 100
BATCH = 1000
KEPT_UP_WITHIN = 2.0
STALL = 60.0


def payload(seq, enq_ns, ready_ns):
    """The ~100-byte JSON payload of task seq: as bench/cmd/peerbench's payload()."""
    s = '{"i":%d,"t":%d,"r":%d,"pad":"' % (seq, enq_ns, ready_ns)
    return s + "x" * (PAYLOAD_SIZE - 2 - len(s)) + '"}'


_fd = None


def _out():
    global _fd
    if _fd is None or _fd[0] != os.getpid():  # opened again after a fork
        _fd = (os.getpid(), os.open(os.environ["PB_OUT"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
    return _fd[1]


def handle_noop(p):
    """W1's handler: one byte appended to the result file (its size is the done count)."""
    os.write(_out(), b"1")


def handle_record(p):
    """W2, W3, W5: appends "seq ready_ns start_ns" to the result file."""
    now = time.time_ns()
    d = json.loads(p)
    os.write(_out(), b"%d %d %d\n" % (d["i"], d["r"], now))


def done_count(path):
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def records(path):
    seen, lats = set(), []
    try:
        with open(path, "rb") as f:
            for line in f:
                parts = line.split()
                if len(parts) != 3:
                    continue
                i, r, s = (int(x) for x in parts)
                if i in seen:
                    continue
                seen.add(i)
                lats.append((s - r) / 1e6)
    except FileNotFoundError:
        pass
    lats.sort()
    return lats


def percentile(s, p):
    if not s:
        return None
    rank = max(1, min(len(s), int(math.ceil(p * len(s)))))
    return round(s[rank - 1], 3)


def add_pickups(res, prefix, lats):
    res["picked_up"] = len(lats)
    for name, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)):
        res["%s_%s_ms" % (prefix, name)] = percentile(lats, p)


def produce(total, rate, enqueue):
    """Calls enqueue(seq) for seq in range(total) at rate per second, catching up every
    2 ms as peerbench does; returns the achieved rate."""
    start = time.monotonic()
    sent = 0
    while sent < total:
        time.sleep(0.002)
        due = min(total, int((time.monotonic() - start) * rate))
        while sent < due:
            enqueue(sent)
            sent += 1
    return total / (time.monotonic() - start)


def wait_drain(path, target):
    """Polls the done count every ms until target; returns (seconds from the first poll
    that saw a task done, tasks done in that time): worker start-up is excluded."""
    first = first_count = None
    last, last_change = -1, time.monotonic()
    while True:
        n = done_count(path)
        now = time.monotonic()
        if n > 0 and first is None:
            first, first_count = now, n
        if n >= target:
            return now - first, target - first_count
        if n != last:
            last, last_change = n, now
        elif now - last_change > STALL:
            raise RuntimeError("stalled: %d of %d done" % (n, target))
        time.sleep(0.001)


def wait_records(path, target, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(records(path)) >= target:
            return True
        time.sleep(0.01)
    return len(records(path)) >= target


def steady(res, start, out, n, rate, enqueue):
    """W2 and W3: starts a worker, calls enqueue(seq) n times at rate per second, waits for
    the records, and adds the pickup figures and whether the worker kept up to res."""
    proc = start()
    try:
        time.sleep(0.3)
        achieved = produce(n, rate, enqueue)
        kept = wait_records(out, n, KEPT_UP_WITHIN)
        if not kept:
            wait_records(out, n, 30)
    finally:
        stop_worker(proc)
    lats = records(out)
    res.update(tasks=n, rate=rate, achieved_rate=round(achieved, 1))
    add_pickups(res, "pickup", lats)
    res["kept_up"] = kept and achieved >= 0.95 * rate and len(lats) == n


def delayed(res, start, out, n, enqueue_delayed):
    """W5: starts a worker, calls enqueue_delayed(seq, delay) n times with delays uniform
    in 0-10 s, waits for the records, and adds the lateness figures to res."""
    proc = start()
    try:
        time.sleep(0.3)
        for i in range(n):
            enqueue_delayed(i, random.uniform(0, 10))
        if not wait_records(out, n, 70):
            raise RuntimeError("only %d of %d delayed tasks ran within 70 s" % (len(records(out)), n))
    finally:
        stop_worker(proc)
    res["tasks"] = n
    add_pickups(res, "late", records(out))


def start_worker(cmd, env, ready):
    """Starts a worker in a session of its own; ready() says when it is ready."""
    proc = subprocess.Popen(cmd, env=env, cwd=os.path.dirname(os.path.abspath(__file__)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 60
    while not ready():
        if proc.poll() is not None:
            raise RuntimeError("worker exited: %s" % proc.stderr.read().decode(errors="replace")[-1500:])
        if time.monotonic() > deadline:
            stop_worker(proc)
            raise RuntimeError("worker not ready within 60 s")
        time.sleep(0.01)
    return proc


def stop_worker(proc):
    """SIGTERM (a warm shutdown) to the worker's process group, SIGKILL after 10 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # children left behind, if any
    except ProcessLookupError:
        pass


def emit(res):
    print(json.dumps(res), flush=True)


def tempdir(prefix):
    """A temporary directory, removed when the script exits through main_guard."""
    d = tempfile.mkdtemp(prefix=prefix)
    _tempdirs.append(d)
    return d


_tempdirs = []


def main_guard(fn):
    try:
        fn()
    except Exception as e:  # one JSON line that peerbench reports
        emit({"error": "%s: %s" % (type(e).__name__, e)})
        sys.exit(1)
    finally:
        for d in _tempdirs:
            shutil.rmtree(d, ignore_errors=True)
