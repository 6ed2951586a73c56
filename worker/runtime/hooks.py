"""Every lifecycle hook of the worker, connected in one place, in the order they must run.

Celery calls the handlers of one signal in the order they were connected; the list
below is that order, written down instead of implied by import order. Celery imports
this module with the tasks (it is the last of the app's ``include``), before it sends
``worker_init``. A handler whose module declares ``TRANSPORT`` (the broker transport it
serves, :mod:`worker.runtime.transport`) is connected only on that transport.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from celery import signals
from celery.utils.dispatch import Signal

from worker.celery import app
from worker.runtime import (
    consumer_timeout,
    lifecycle,
    liveness,
    preemption,
    privacy,
    recovery,
    reports,
    take,
)
from worker.runtime.transport import broker_transport
from worker.tasks import webhooks

__all__ = ["HOOKS", "connect"]

HOOKS: list[tuple[Signal, Callable[..., Any]]] = [
    # The parent, before it forks: check the settings and the model files (a problem
    # stops the worker here), then make the directory the children report into.
    (signals.worker_init, lifecycle.on_worker_init),
    (signals.worker_init, reports.make_reports_dir),
    # ... and starts beating its liveness key (node-loss recovery).
    (signals.worker_init, liveness.start_heartbeat),
    # ... and, on Redis, takes each job off its queue together with its holder record.
    (signals.worker_init, take.take_atomically),
    # Each child: load and warm the model, then report what it loaded.
    (signals.worker_process_init, lifecycle.on_process_init),
    (signals.worker_process_init, reports.report_after_load),
    # The parent, once consuming: SIGTERM starts a soft shutdown with ASR_SHUTDOWN_GRACE.
    (signals.worker_ready, preemption.on_worker_ready),
    # ... and, on RabbitMQ, says when the server would take long jobs back (consumer_timeout).
    (signals.worker_ready, consumer_timeout.check_server),
    # The parent, for each message: remember its delivery tag, to requeue it after a lost
    # connection, and record this node as its holder, for node-loss recovery.
    (signals.task_received, recovery.remember_received),
    (signals.task_received, liveness.record_received),
    # Each job as it starts, before Celery stores STARTED: a URL's signature is not stored.
    (signals.task_prerun, privacy.mask_stored_args),
    # Each job as it ends: its summary in the log, the child's report if the model changed,
    # and the job's webhook.
    (signals.task_postrun, lifecycle.on_task_postrun),
    (signals.task_postrun, reports.report_if_changed),
    (signals.task_success, webhooks.on_task_success),
    (signals.task_failure, webhooks.on_task_failure),
    (signals.task_revoked, webhooks.on_task_revoked),
    # Each child as it exits: unload the model, then remove its report; the parent last.
    (signals.worker_process_shutdown, lifecycle.on_process_shutdown),
    (signals.worker_process_shutdown, reports.remove_report),
    (signals.worker_shutdown, liveness.stop_heartbeat),
    (signals.worker_shutdown, reports.remove_reports_dir),
]


def serves(handler: Callable[..., Any], transport: str) -> bool:
    """False for a handler of a mechanism that serves another broker transport."""
    module = sys.modules.get(handler.__module__)
    return getattr(module, "TRANSPORT", transport) == transport


def connect() -> None:
    """Connect :data:`HOOKS` (once: each handler has its own dispatch id)."""
    privacy.install()  # Celery's task-success line without the transcript
    transport = broker_transport(app.conf.broker_url)
    for signal, handler in HOOKS:
        if not serves(handler, transport):
            continue
        signal.connect(handler, weak=False, dispatch_uid=f"{handler.__module__}.{handler.__qualname__}")


connect()
