"""The Celery app of the benchmark: tasks that do what the workloads' handlers do (docs/workloads.md)."""

import os

from celery import Celery
from celery.signals import worker_ready

import common

app = Celery("peerbench", broker=os.environ.get("PB_BROKER", "redis://127.0.0.1:6379/12"))
app.conf.update(
    task_ignore_result=True,  # no result backend: brisk and asynq keep no results either
    task_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.noop")
def noop(p):
    common.handle_noop(p)


@app.task(name="bench.record")
def record(p):
    common.handle_record(p)


@worker_ready.connect
def _ready(**_):
    if os.environ.get("PB_READY"):
        open(os.environ["PB_READY"], "w").close()
