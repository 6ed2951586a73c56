"""Put back on their queues the unacknowledged jobs of a worker node that died.

kombu's Redis transport keeps every delivered, unacknowledged message in its
``unacked`` hash and ``unacked_index`` zset until it is acked; only the
visibility timeout (hours here, so a long job never runs twice) returns one
whose holder vanished. This consumer step, on every worker, runs a sweep every
fifth of ``ASR_NODE_LOSS_SECONDS``; one worker at a time (a Redis lock naming it) looks at
each unacked delivery's holder record (``worker.runtime.liveness``) and, when the
holder's liveness record has expired, restores that delivery to its queue.

A delivery is restored only when all of these hold, checked in one WATCH/MULTI
transaction with the restore itself, so two sweepers, an ack or a new delivery
racing the sweep cannot make a job run twice:

* its holder record names a node whose liveness record is gone;
* the record's score is the delivery's current ``unacked_index`` score;
* the message is still in ``unacked``.

A sweeper judges only after its own liveness record has been refreshed without a
failure for a whole TTL: after a Redis outage or failover every record may have
expired at once, and live nodes need that long to beat again.

A delivery without a holder record (a worker of an older release, or one that takes
with kombu's BRPOP: ``worker.runtime.take``) is left to the visibility timeout. The
restored message is marked redelivered, so its next start counts as a delivery
(``worker.runtime.delivery``: the cap still stops a file that kills whole nodes) and
``worker_deduplicate_successful_tasks`` skips it if its result is already SUCCESS.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from celery import bootsteps
from kombu.utils.json import loads

from worker.pipeline.settings import get_settings
from worker.runtime.connections import broker_client
from worker.runtime.liveness import holder_key, node_id, node_key, steady_for, timings
from worker.runtime.transport import REDIS

__all__ = ["RecoverLostNodes", "sweep"]

log = logging.getLogger(__name__)

#: The broker transport this serves (worker.runtime.transport): off on RabbitMQ.
TRANSPORT = REDIS

LOCK_KEY = "asr:node-loss:lock"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def sweep(channel: Any, *, own_node: str | None, lock_seconds: float = 60.0, client: Any = None) -> list[str]:
    """Restore the deliveries held by lost nodes; return the task ids put back.

    Does nothing (returns ``[]``) while another live worker holds the sweep lock. The
    lock holds the sweeper's node id: a lock left by a node that died in its own sweep
    is taken over as soon as that node's liveness record has expired, not when the
    lock does (which held the lost node's jobs back by up to ``lock_seconds``).
    """
    token = own_node or uuid.uuid4().hex
    with channel.conn_or_acquire(client) as client:
        lock = client.lock(LOCK_KEY, timeout=lock_seconds, blocking=False)
        if not lock.acquire(blocking=False, token=token):
            if not _release_if_holder_lost(client) or not lock.acquire(blocking=False, token=token):
                return []
        try:
            return _sweep(channel, client, own_node)
        finally:
            try:
                lock.release()
            except Exception:  # expired meanwhile: another sweeper may run, the transactions keep it safe
                pass


def _release_if_holder_lost(client: Any) -> bool:
    """Delete the sweep lock if the node holding it is lost; True if it was deleted."""
    released: list[bool] = []

    def transaction(pipe: Any) -> None:
        holder = pipe.get(LOCK_KEY)
        if holder is None or pipe.exists(node_key(_text(holder))):
            return  # free already (the next sweep takes it), or its sweeper is alive
        pipe.multi()
        pipe.delete(LOCK_KEY)
        released.append(True)

    client.transaction(transaction, LOCK_KEY)
    if released:
        log.info("took over the node-loss sweep lock of a lost node")
    return bool(released)


def _sweep(channel: Any, client: Any, own_node: str | None) -> list[str]:
    deliveries = client.zrange(channel.unacked_index_key, 0, -1, withscores=True)
    if not deliveries:
        return []
    tags = [_text(tag) for tag, _ in deliveries]
    holders: dict[str, tuple[str, float]] = {}
    for tag, raw in zip(tags, client.mget([holder_key(t) for t in tags]), strict=True):
        if raw is not None:
            node, score = json.loads(_text(raw))
            holders[tag] = (node, float(score))
    nodes = sorted({node for node, _ in holders.values()} - {own_node})
    records = client.mget([node_key(n) for n in nodes]) if nodes else []
    alive = {n for n, record in zip(nodes, records, strict=True) if record}
    restored = []
    for tag, (node, score) in holders.items():
        if node == own_node or node in alive:
            continue
        task_id = _restore_if_lost(channel, client, tag, node, score)
        if task_id:
            log.warning("requeued job %s: its worker node %s is lost", task_id, node.split("/")[0])
            restored.append(task_id)
    return restored


def _restore_if_lost(channel: Any, client: Any, tag: str, node: str, score: float) -> str | None:
    """Restore one delivery if it is still the one ``node`` held; return its task id."""
    restored: list[str] = []
    hkey = holder_key(tag)

    def transaction(pipe: Any) -> None:
        raw_holder = pipe.get(hkey)
        current = pipe.zscore(channel.unacked_index_key, tag)
        payload = pipe.hget(channel.unacked_key, tag)
        if raw_holder is None or json.loads(_text(raw_holder))[0] != node or pipe.exists(node_key(node)):
            return  # a new holder, or the node came back
        pipe.multi()
        pipe.delete(hkey)
        if current is None or payload is None or float(current) != score:
            return  # acked, or a newer delivery of the same tag: only the stale record goes
        message, exchange, routing_key = loads(_text(payload))
        pipe.zrem(channel.unacked_index_key, tag)
        pipe.hdel(channel.unacked_key, tag)
        # kombu's own restore (as QoS.restore_by_tag): the queue lookup, priorities, redelivered flag.
        channel._do_restore_message(message, exchange, routing_key, pipe, True)
        restored.append(str(message.get("headers", {}).get("id") or tag))

    client.transaction(transaction, hkey, channel.unacked_key, channel.unacked_index_key, node_key(node))
    return restored[-1] if restored else None


class RecoverLostNodes(bootsteps.StartStopStep):
    """Sweep for lost nodes' jobs every fifth of ``ASR_NODE_LOSS_SECONDS``, in the consumer's loop."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self._tref: Any = None

    def start(self, c: Any) -> None:
        channel: Any = getattr(getattr(c, "task_consumer", None), "channel", None)
        if channel is None or not hasattr(getattr(channel, "qos", None), "restore_by_tag"):
            return  # not the Redis transport: the broker redelivers a lost consumer's messages itself
        _, ttl, every = timings(get_settings().node_loss_seconds)

        def run() -> None:
            if steady_for() < ttl:
                return  # just started, or back from an outage: live nodes may not have beaten yet
            try:
                client = broker_client(c.app)
                sweep(channel, own_node=node_id(), lock_seconds=max(every, 30.0), client=client)
            except Exception as exc:  # Redis away for a moment: the next sweep tries again
                log.warning("node-loss sweep failed: %s: %s", type(exc).__name__, exc)

        self._tref = c.timer.call_repeatedly(every, run)

    def stop(self, c: Any) -> None:
        if self._tref is not None:
            self._tref.cancel()
            self._tref = None
