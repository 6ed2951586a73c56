"""Redis clients of the worker's own: never the consumer's connection.

kombu's Redis channel pins one connection to ``channel.client`` for its asynchronous
BRPOP: the event loop sends BRPOP on it and reads the next reply as BRPOP's. A command
sent through ``channel.client`` (or the channel's pool) while that BRPOP is in flight
takes BRPOP's reply (a job then vanishes), and the event loop reads the command's reply
as BRPOP's (``TypeError: 'int' object is not iterable``, and the worker exits). So every
command the worker's own code sends (requeue after a reconnect, liveness and holder
records, the node-loss sweep, delivery counts, fan-out progress and cancel) goes through
a client from here:

* :func:`broker_client`: a pool of its own on a kombu ``Connection`` of its own to the
  broker (``app.connection_for_write()``), so it follows the transport's URL handling,
  Sentinel included (the pool asks the Sentinels for the master on each new connection);
* :func:`backend_client`: the result backend's client, a pool apart from the broker's
  (Celery's Sentinel backend follows the master the same way).

Both are ``None`` where the transport or backend is not Redis. redis-py pools are
thread-safe and reconnect by themselves after a restart or a failover.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, ReadOnlyError, TimeoutError
from redis.retry import Retry

__all__ = ["backend_client", "broker_client", "reset", "riding_out"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_lock = threading.Lock()
#: A Redis restart or a Sentinel failover (down-after plus the election) lasts seconds to a
#: minute: ride it out (up to about 90 s) rather than fail the job that met it.
#: A master SIGKILLed and back as a replica answers READONLY until the clients reconnect.
_OUTAGE = Retry(
    ExponentialBackoff(cap=5.0, base=0.2),
    retries=25,
    supported_errors=(ConnectionError, TimeoutError, ReadOnlyError, OSError),
)
#: (pid, broker URL) -> (kombu Connection, its channel): this process's own broker connection.
_broker: dict[tuple[int, str], tuple[Any, Any]] = {}


def _own_channel(app: Any) -> Any | None:
    """The channel of this process's own broker connection (made on first use, after a fork anew)."""
    key = (os.getpid(), str(app.conf.broker_url))
    with _lock:
        if key in _broker:
            return _broker[key][1]
        connection = app.connection_for_write()
        if connection.transport.driver_type != "redis":
            connection.release()
            return None
        try:
            connection.ensure_connection(max_retries=1)  # Redis away: fail now, the caller retries later
            channel = connection.default_channel
        except Exception:
            connection.release()
            raise
        _broker[key] = (connection, channel)
        return channel


def broker_client(app: Any) -> Any | None:
    """A redis-py client to the broker's Redis, on a pool apart from the consumer's; None if not Redis."""
    channel = _own_channel(app)
    if channel is None:
        return None
    # The channel's synchronous pool: its asynchronous one (channel.client) is this
    # connection's BRPOP client, never used since this connection never consumes.
    return channel._create_client()


def backend_client(backend: Any) -> Any | None:
    """The result backend's redis-py client (a pool of its own), or None if the backend is not Redis."""
    from celery.backends.redis import RedisBackend

    return backend.client if isinstance(backend, RedisBackend) else None


def reset() -> None:
    """Close and forget this process's own broker connections (a clean shutdown, a test's end)."""
    with _lock:
        held = [conn for (pid, _), (conn, _) in _broker.items() if pid == os.getpid()]
        _broker.clear()
    for connection in held:
        try:
            connection.release()
        except Exception:  # closing after an outage: nothing to hand back
            log.debug("own broker connection not closed cleanly", exc_info=True)


def riding_out(call: Callable[[], T]) -> T:
    """``call()``, tried again through a Redis outage (restart or failover) of up to about 90 s."""

    def failed(exc: Exception) -> None:
        log.warning("Redis unreachable (%s: %s); trying again", type(exc).__name__, exc)

    return _OUTAGE.call_with_retry(call, failed)
