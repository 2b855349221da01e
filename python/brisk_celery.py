"""Stamp Celery's task messages with their publish time, so that brisk measures the queue
latency of Celery queues exactly (``brisk queues --broker celery+redis://…``).

Import it once where the Celery app is defined::

    import brisk_celery  # noqa: F401  (connects the hook)

It sets two message properties in Celery's ``before_task_publish`` signal:
``published_at``, epoch seconds as a float (the convention Judoscale's adapter
established; kept by Celery's Redis transport), and the standard AMQP ``timestamp``
(whole seconds; the only one of the two that survives Celery's AMQP client, and that
RabbitMQ's management API reports as ``head_message_timestamp``). Standard library and
Celery only; it does nothing else.
"""

import time

from celery.signals import before_task_publish


@before_task_publish.connect(weak=False)
def stamp_published_at(properties=None, **_):
    if properties is None:
        return
    now = time.time()
    properties["published_at"] = now
    # AMQP's timestamp is whole seconds; py-amqp packs it as an integer.
    properties.setdefault("timestamp", int(now))
