"""Who is alive, and who holds which unacknowledged job: the records node-loss recovery reads.

Every worker's main process (never a child: a child can die while its node lives,
and a node can die with all its children) keeps a **liveness record**
``asr:node:<node id>`` in the broker's Redis, a key with a TTL refreshed by a
daemon thread. The thread is started on ``worker_init`` and so lives only in the
main process (threads are not copied into forked children). A node SIGKILLed,
powered off or cut from the network stops refreshing it, and Redis expires it.

Each message a worker takes gets a **holder record** ``asr:holder:<delivery tag>`` =
``[node id, unacked_index score]``, written by the take itself, in the same Lua script that
moves the message from its queue to kombu's ``unacked`` hash (:mod:`worker.runtime.take`).
The main process writes it again on ``task_received`` (every message it takes: plain tasks,
clip batches held by celery-batches, ETA'd webhook retries): the same value, or the only
record where the worker takes with kombu's BRPOP. kombu has put the message in ``unacked``
and ``unacked_index`` by then (``QoS.append`` runs before the consumer's callback), so one
Lua call reads the delivery's score and writes the record atomically. The score ties the
record to *this* delivery: a tag that is restored and handed out again gets a new score, so
an old record never names the new holder.

The node id is ``hostname/pid/random``, not the hostname: a worker restarted on
the same host under the same name is a new node, and the jobs of the dead one
are still recovered.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from typing import Any

from worker.pipeline.settings import get_settings
from worker.runtime.connections import broker_client
from worker.runtime.transport import REDIS

__all__ = [
    "holder_key",
    "holder_ttl",
    "node_id",
    "node_key",
    "record_holder",
    "record_received",
    "start_heartbeat",
    "steady_for",
    "stop_heartbeat",
    "timings",
]

log = logging.getLogger(__name__)

#: The broker transport this serves (worker.runtime.transport): off on RabbitMQ.
TRANSPORT = REDIS

NODE_PREFIX = "asr:node:"
HOLDER_PREFIX = "asr:holder:"

# KEYS[1] unacked_index, KEYS[2] holder key; ARGV[1] tag, ARGV[2] node id, ARGV[3] TTL.
_RECORD_HOLDER = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score then
  redis.call('SET', KEYS[2], cjson.encode({ARGV[2], score}), 'EX', ARGV[3])
end
return score
"""

_node_id: str | None = None
_stop = threading.Event()
#: ``time.monotonic()`` of the first beat of the current unbroken run of beats; None after a failed one.
_steady_since: float | None = None


def holder_ttl(channel: Any) -> int:
    """Seconds a holder record lives: longer than any unacked message (the visibility timeout)."""
    return int(channel.visibility_timeout) + 3600


def node_key(node: str) -> str:
    return NODE_PREFIX + node


def holder_key(tag: str) -> str:
    return HOLDER_PREFIX + tag


def steady_for() -> float:
    """Seconds this process has refreshed its liveness record without a failure (0 when it is failing).

    After a Redis outage or failover every node's record may have expired at once; a node
    that has beaten for a whole TTL since knows that every node that can reach Redis has
    beaten again too, so only then may it judge others lost.
    """
    return 0.0 if _steady_since is None else time.monotonic() - _steady_since


def node_id() -> str | None:
    """This main process's node id, or ``None`` outside a worker's main process."""
    return _node_id


def timings(node_loss_seconds: float) -> tuple[float, int, float]:
    """(heartbeat interval, record TTL, sweep interval) for ``ASR_NODE_LOSS_SECONDS``.

    A record lives half the budget (five missed beats), and a sweep runs every
    fifth of it, so a dead node's jobs are back on the queue within
    ``TTL + sweep interval`` = 0.7 x the budget, leaving room for a slow sweep.
    """
    ttl = max(1, round(node_loss_seconds / 2))
    return node_loss_seconds / 10, ttl, node_loss_seconds / 5


def _beat(app: Any, node: str, ttl: int, interval: float, started: float) -> None:
    global _steady_since
    value = json.dumps({"pid": os.getpid(), "started": started})
    while not _stop.is_set():
        try:
            client = broker_client(app)
            if client is not None:
                client.set(node_key(node), value, ex=ttl)
            if _steady_since is None:
                _steady_since = time.monotonic()
        except Exception as exc:
            _steady_since = None  # the broker is away: try again next beat (the pool reconnects)
            log.warning("liveness record not refreshed (%s); retry in %.1f s", type(exc).__name__, interval)
        _stop.wait(interval)
    try:  # a clean stop: no need to wait for the TTL
        client = broker_client(app)
        if client is not None:
            client.delete(node_key(node))
    except Exception:
        pass


def start_heartbeat(sender: Any = None, **_: Any) -> None:
    global _node_id
    hostname = getattr(sender, "hostname", None) or "unknown"
    _node_id = f"{hostname}/{os.getpid()}/{secrets.token_hex(4)}"
    interval, ttl, _every = timings(get_settings().node_loss_seconds)
    app = sender.app
    thread = threading.Thread(
        target=_beat, args=(app, _node_id, ttl, interval, time.time()), name="asr-liveness", daemon=True
    )
    thread.start()
    log.info("liveness record %s every %.1f s (TTL %d s)", node_key(_node_id), interval, ttl)


def stop_heartbeat(**_: Any) -> None:
    _stop.set()


def record_holder(channel: Any, tag: str, node: str, client: Any = None) -> bool:
    """Record ``node`` as the holder of the unacked delivery ``tag``; False if it is no longer unacked.

    ``client``: a connection of the worker's own (:mod:`worker.runtime.connections`); by
    default one from the channel's pool.
    """
    ttl = holder_ttl(channel)
    with channel.conn_or_acquire(client) as client:
        score = client.eval(_RECORD_HOLDER, 2, channel.unacked_index_key, holder_key(tag), tag, node, ttl)
    return score is not None


def record_received(request: Any = None, **_: Any) -> None:
    message = getattr(request, "message", None)
    tag = getattr(message, "delivery_tag", None)
    channel = getattr(message, "channel", None)
    if _node_id is None or tag is None or not hasattr(channel, "unacked_index_key"):
        return  # not a worker's main process, or not the Redis transport
    try:
        record_holder(channel, str(tag), _node_id, broker_client(request.app))
    except Exception:
        # Without a record the job is left to the visibility timeout, as before.
        log.warning("could not record the holder of job %s", getattr(request, "id", "?"), exc_info=True)
