"""Workloads W1, W2, W3, W5 and MEM of docs/workloads.md against RQ on Redis; prints one JSON line.
Run by bench/cmd/peerbench with Debian's /usr/bin/python3 (python3-rq). With --role worker
it is the worker: SimpleWorker (jobs in the worker process) or Worker (a fork per job)."""

import argparse
import os
import sys
import time
from datetime import timedelta

import common

QUEUE = "pb"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload")
    ap.add_argument("--role", default="driver")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    ap.add_argument("--worker-class", default="simple", choices=["simple", "fork"])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--rate", type=float, default=5)
    a = ap.parse_args()

    import rq
    from redis import Redis
    from rq import Queue, SimpleWorker, Worker

    conn = Redis.from_url(a.redis)
    q = Queue(QUEUE, connection=conn)
    if a.role == "worker":
        cls = SimpleWorker if a.worker_class == "simple" else Worker
        # Warnings only: brisk's and asynq's workers log nothing per task either.
        cls([q], connection=conn).work(with_scheduler=True, logging_level="WARNING")
        return

    import rq_tasks

    tmp = common.tempdir("peerbench-rq-")
    out = os.path.join(tmp, "out")
    os.environ["PB_OUT"] = out
    worker_cmd = [sys.executable, os.path.abspath(__file__), "--role", "worker", "--redis", a.redis,
                  "--worker-class", a.worker_class]

    def start():
        return common.start_worker(worker_cmd, dict(os.environ), lambda: Worker.count(connection=conn) > 0)

    def data(fn, seq, delay=0.0):
        now = time.time_ns()
        return common.payload(seq, now, now + int(delay * 1e9))

    res = {"system": "rq-" + a.worker_class, "rq": rq.__version__}
    w = a.workload
    if w == "W1":
        t0 = time.monotonic()
        for i in range(a.n):
            q.enqueue(rq_tasks.noop, data(rq_tasks.noop, i))
        res["enqueue_per_s"] = round(a.n / (time.monotonic() - t0), 1)
        t0 = time.monotonic()
        for i in range(a.n, 2 * a.n, common.BATCH):
            q.enqueue_many([Queue.prepare_data(rq_tasks.noop, (data(rq_tasks.noop, j),))
                            for j in range(i, min(2 * a.n, i + common.BATCH))])
        res["enqueue_batch_per_s"] = round(a.n / (time.monotonic() - t0), 1)
        res["tasks"] = 2 * a.n
        proc = start()
        try:
            secs, count = common.wait_drain(out, 2 * a.n)
        finally:
            common.stop_worker(proc)
        res["drain_per_s"] = round(count / secs, 1)
    elif w in ("W2", "W3"):
        common.steady(res, start, out, a.n, a.rate, lambda seq: q.enqueue(rq_tasks.record, data(rq_tasks.record, seq)))
    elif w == "W5":
        common.delayed(res, start, out, a.n, lambda seq, d: q.enqueue_in(timedelta(seconds=d), rq_tasks.record, data(rq_tasks.record, seq, d)))
    elif w == "MEM":
        for i in range(a.n):
            q.enqueue(rq_tasks.noop, data(rq_tasks.noop, i))
        res["tasks"] = a.n
    else:
        raise ValueError("workload %s not supported" % w)
    common.emit(res)


if __name__ == "__main__":
    common.main_guard(main)
