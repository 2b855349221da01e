"""Workloads W1, W2, W3, W5 and MEM of docs/workloads.md against Celery 5 on Redis; prints one JSON
line. Run by bench/cmd/peerbench with Debian's /usr/bin/python3 (python3-celery)."""

import argparse
import os
import sys
import time

import common


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", required=True)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    ap.add_argument("--pool", default="prefork")
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--rate", type=float, default=5)
    a = ap.parse_args()

    tmp = common.tempdir("peerbench-celery-")
    out, ready = os.path.join(tmp, "out"), os.path.join(tmp, "ready")
    os.environ.update(PB_BROKER=a.redis, PB_OUT=out, PB_READY=ready)
    import celery_tasks  # after PB_BROKER is set

    worker_cmd = [sys.executable, "-m", "celery", "-A", "celery_tasks", "worker", "--pool", a.pool,
                  "-c", str(a.concurrency), "-l", "WARNING", "--without-gossip", "--without-mingle",
                  "--without-heartbeat"]

    def start():
        return common.start_worker(worker_cmd, dict(os.environ), lambda: os.path.exists(ready))

    def send(task, seq, delay=0.0):
        now = time.time_ns()
        p = common.payload(seq, now, now + int(delay * 1e9))
        if delay > 0:
            task.apply_async((p,), countdown=delay)
        else:
            task.apply_async((p,))

    res = {"system": "celery-" + a.pool, "pool": a.pool, "concurrency": a.concurrency, "celery": __import__("celery").__version__}
    w = a.workload
    if w == "W1":
        t0 = time.monotonic()
        for i in range(a.n):
            send(celery_tasks.noop, i)
        res["enqueue_per_s"] = round(a.n / (time.monotonic() - t0), 1)
        # Celery has no batch enqueue: the worker drains the n enqueued one call each.
        res["tasks"] = a.n
        proc = start()
        try:
            secs, count = common.wait_drain(out, a.n)
        finally:
            common.stop_worker(proc)
        res["drain_per_s"] = round(count / secs, 1)
    elif w in ("W2", "W3"):
        common.steady(res, start, out, a.n, a.rate, lambda seq: send(celery_tasks.record, seq))
    elif w == "W5":
        common.delayed(res, start, out, a.n, lambda seq, d: send(celery_tasks.record, seq, d))
    elif w == "MEM":
        for i in range(a.n):
            send(celery_tasks.noop, i)
        res["tasks"] = a.n
    else:
        raise ValueError("workload %s not supported" % w)
    common.emit(res)


if __name__ == "__main__":
    common.main_guard(main)
