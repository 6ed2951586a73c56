"""Give back jobs that a lost broker connection left stranded.

With Redis, a job a worker has taken sits in the ``unacked`` hash until it is
acked. When the connection drops, Celery cancels the running acks_late jobs
(``worker_cancel_long_running_tasks_on_connection_loss``) and tries to put the
unstarted ones back, but Redis is unreachable at that moment, so they stay in
``unacked`` until the visibility timeout (hours, so long jobs never run twice)
redelivers them. This consumer step puts them back within seconds: on every
(re)connection and then every few seconds (a cancelled job leaves the worker's
books only once its child is gone, after the reconnection), it looks at each job
this worker received before the connection dropped and no longer holds (not
running, reserved, or gathered for a clip batch) at two looks in a row (a job sent
to a child just before the drop is in no book until the child accepts it):

* still in ``unacked`` and its result not stored yet: requeued (kombu's own restore);
* its result already stored (SUCCESS, FAILURE or REVOKED): acknowledged, never run again;
* gone from ``unacked``: acked or requeued already, forgotten.

Only this worker's own delivery tags are touched, so jobs held by other workers are
never moved. Every command goes over a connection of its own
(:mod:`worker.runtime.connections`), never the consumer's.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps, states
from celery.worker import state

from worker.runtime.connections import broker_client
from worker.runtime.transport import REDIS

__all__ = ["RestoreOrphanedJobs", "remember_received", "settle"]

log = logging.getLogger(__name__)

#: The broker transport this serves (worker.runtime.transport): off on RabbitMQ.
TRANSPORT = REDIS

#: Delivery tag -> (task id, the channel it came on) of the jobs this worker process received.
_received: dict[str, tuple[str, Any]] = {}
#: Tags seen unheld at the last look: requeued only if still unheld at the next.
_unheld: set[str] = set()
#: Past this many remembered tags, forget the ones of finished jobs.
_PRUNE_AT = 1000
#: Seconds between two looks after the (re)connection.
EVERY = 5.0
#: States after which a delivery is acknowledged instead of run again.
_SETTLED = states.READY_STATES


def _held_ids(app: Any = None) -> set[str]:
    """Ids of the jobs this worker holds: reserved, running, or gathered for a clip batch."""
    held = {r.id for r in state.active_requests} | {r.id for r in state.reserved_requests}
    for task in app.tasks.values() if app is not None else ():
        for queue in (getattr(task, "_buffer", None), getattr(task, "_pending", None)):  # celery-batches
            held.update(r.id for r in list(getattr(queue, "queue", ())))
    return held


def remember_received(request: Any = None, **_: Any) -> None:
    message = getattr(request, "message", None)
    tag = getattr(message, "delivery_tag", None)
    if tag is None:
        return
    if len(_received) >= _PRUNE_AT:
        held = _held_ids(getattr(request, "app", None))
        for old_tag, (task_id, _channel) in list(_received.items()):
            if task_id not in held:
                del _received[old_tag]
                _unheld.discard(old_tag)
    _received[str(tag)] = (request.id, getattr(message, "channel", None))


def settle(channel: Any, client: Any, app: Any) -> list[str]:
    """Requeue, or acknowledge if its result is stored, each job received before the consumer's
    current ``channel`` (so, before a lost connection) that this worker no longer holds.

    ``client`` is a connection of our own. Returns the task ids requeued.
    """
    qos = channel.qos
    held = _held_ids(app)
    requeued = []
    for tag, (task_id, came_on) in list(_received.items()):
        if came_on is channel or task_id in held:
            _unheld.discard(tag)
            continue  # received on this connection (the consumer acks or rejects it), or still ours
        if tag not in _unheld:
            # Seen unheld once: a job handed to a child just before the connection dropped is
            # in none of the worker's books until the child accepts it. Judge at the next look.
            _unheld.add(tag)
            continue
        _unheld.discard(tag)
        if client.hexists(qos.unacked_key, tag):
            stored = app.backend.get_state(task_id)
            if stored in _SETTLED:  # acknowledged as kombu's QoS.ack does, on our connection
                qos._remove_from_indices(tag, client.pipeline()).execute()
                log.warning("job %s already ended %s: acknowledged, not run again", task_id, stored)
            else:
                qos.restore_by_tag(tag, client=client, leftmost=True)
                log.warning("requeued job %s, stranded by the lost broker connection", task_id)
                requeued.append(task_id)
        if _received.get(tag, (None,))[0] == task_id and task_id not in _held_ids(app):
            del _received[tag]
    return requeued


class RestoreOrphanedJobs(bootsteps.StartStopStep):
    """On each broker (re)connection and every :data:`EVERY` s, requeue our jobs that no child runs."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self._tref: Any = None

    def start(self, c: Any) -> None:
        channel: Any = getattr(getattr(c, "task_consumer", None), "channel", None)
        if channel is None or not hasattr(getattr(channel, "qos", None), "restore_by_tag"):
            return  # not the Redis transport: the broker redelivers by itself

        def run() -> None:
            if not _received:
                return
            try:
                client = broker_client(c.app)
                if client is not None:
                    settle(channel, client, c.app)
            except Exception as exc:  # Redis away again: the next look tries again
                log.warning("stranded jobs not looked at: %s: %s", type(exc).__name__, exc)

        run()
        self._tref = c.timer.call_repeatedly(EVERY, run)

    def stop(self, c: Any) -> None:
        if self._tref is not None:
            self._tref.cancel()
            self._tref = None
