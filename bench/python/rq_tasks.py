"""The RQ job functions of the benchmark: they do what BRIEF.md's handlers do."""

import common


def noop(p):
    common.handle_noop(p)


def record(p):
    common.handle_record(p)
