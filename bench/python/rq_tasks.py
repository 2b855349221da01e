"""The RQ job functions of the benchmark: they do what the workloads' handlers do (docs/workloads.md)."""

import common


def noop(p):
    common.handle_noop(p)


def record(p):
    common.handle_record(p)
