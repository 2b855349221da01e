"""The handler process of peerbench's brisk-exec system: a `brisk worker --exec` child built
on python/brisk.py (on $PYTHONPATH). For every task it appends "seq ready_ns start_ns" to
$PB_OUT, its start time taken as the Celery and RQ handlers of common.py take theirs; it
writes "ready PID" once it serves."""

import os
import time

import brisk

_fd = os.open(os.environ["PB_OUT"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


@brisk.handler("*")
def record(payload):
    start = time.time_ns()
    os.write(_fd, b"%d %d %d\n" % (payload["i"], payload["r"], start))


if __name__ == "__main__":
    os.write(_fd, b"ready %d\n" % os.getpid())
    brisk.run()
