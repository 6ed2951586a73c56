"""Give back jobs that a lost broker connection left stranded.

With Redis, a job a worker has taken sits in the ``unacked`` hash until it is
acked. When the connection drops, Celery cancels the running acks_late jobs
(``worker_cancel_long_running_tasks_on_connection_loss``) and tries to put the
unstarted ones back, but Redis is unreachable at that moment, so they stay in
``unacked`` until the visibility timeout (hours, so long jobs never run twice)
redelivers them. This consumer step runs on every (re)connection and puts back
at once the jobs this worker received earlier and no longer holds.

Only this worker's own delivery tags are touched, so jobs held by other
workers are never moved.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps
from celery.worker import state

from worker.runtime.transport import REDIS

__all__ = ["RestoreOrphanedJobs", "remember_received"]

log = logging.getLogger(__name__)

#: The broker transport this serves (worker.runtime.transport): off on RabbitMQ.
TRANSPORT = REDIS

#: Delivery tag -> task id of the jobs this worker process received.
_received: dict[str, str] = {}
#: Past this many remembered tags, forget the ones of finished jobs.
_PRUNE_AT = 1000


def _held_ids() -> set[str]:
    return {r.id for r in state.active_requests} | {r.id for r in state.reserved_requests}


def remember_received(request: Any = None, **_: Any) -> None:
    message = getattr(request, "message", None)
    tag = getattr(message, "delivery_tag", None)
    if tag is None:
        return
    if len(_received) >= _PRUNE_AT:
        held = _held_ids()
        for old_tag, task_id in list(_received.items()):
            if task_id not in held:
                del _received[old_tag]
    _received[str(tag)] = request.id


class RestoreOrphanedJobs(bootsteps.StartStopStep):
    """On each broker (re)connection, requeue our unacked jobs that no child runs any more."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, c: Any) -> None:
        if not _received:
            return
        channel: Any = getattr(getattr(c, "task_consumer", None), "channel", None)
        qos = getattr(channel, "qos", None)
        if channel is None or qos is None or not hasattr(qos, "restore_by_tag"):
            return  # not the Redis transport: the broker redelivers by itself
        held = _held_ids()
        client = channel.client
        for tag, task_id in list(_received.items()):
            if task_id in held:
                continue
            if client.hexists(qos.unacked_key, tag):
                qos.restore_by_tag(tag, leftmost=True)
                log.warning("requeued job %s, stranded by the lost broker connection", task_id)
            del _received[tag]
