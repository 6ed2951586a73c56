"""Take a job off a Redis queue and record who holds it in one step: a node killed at any instant loses none.

kombu's Redis transport takes a message with ``BRPOP`` and only then, back in Python,
writes it to its ``unacked`` hash and ``unacked_index`` zset (``QoS.append``); the holder
record (:mod:`worker.runtime.liveness`) comes later still, on ``task_received``. In
between, the message is in no list and no hash: in the reply on its way, in the socket
buffer (kombu even leaves a reply unread while the prefetch is full), in the Python that
parses it. A node SIGKILLed then loses the job outright: no visibility timeout and no
node-loss sweep can bring back what Redis no longer holds (a CI run of the chaos campaign
lost one so; ``bench/take_window.py`` shows it beside this take).

The channels here take with one Lua script instead, which Redis runs atomically: pop the
first message of the consumer's lists (the order ``BRPOP`` uses: priority, then the queue
cycle), put it in ``unacked`` and ``unacked_index`` as ``QoS.append`` would, and write this
node's holder record with the delivery's score. At every instant a job is on a queue or
unacknowledged with its holder named, so a lost node's jobs all come back
(:mod:`worker.runtime.nodeloss`). A script cannot block: when every list is empty the
consumer asks again after ``ASR_TAKE_POLL_SECONDS`` (0.1 s: an idle worker starts a job
that much later at most, and sends Redis ten small scripts a second).

Kept as kombu does it: acks, rejects and restores (the message is in ``unacked`` as
kombu's own append leaves it), the visibility timeout, fan-out (``LISTEN``), and
everything a producer does. A channel with a consumer that does not ack (Celery's gossip
and event receivers) takes with ``BRPOP``: kombu keeps no ``unacked`` record for those, and
nothing would ever remove one. On ``worker_init`` (:mod:`worker.runtime.hooks`) the
``redis``, ``rediss`` and ``sentinel`` URL schemes are pointed at these transports in the
worker's processes only (kombu's ``TRANSPORT_ALIASES``): a connection that fails over to
another URL of ``broker_url`` keeps them, Flower and producers keep kombu's.
``ASR_TAKE_POLL_SECONDS=0``, a broker with ``global_keyprefix`` or a Redis that refuses
scripts (logged once) take with ``BRPOP``.
"""

from __future__ import annotations

import logging
import time
from queue import Empty
from typing import Any

import kombu.transport
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads
from redis.exceptions import ResponseError

from worker.pipeline.settings import get_settings
from worker.runtime.liveness import HOLDER_PREFIX, holder_ttl, node_id
from worker.runtime.transport import REDIS

__all__ = ["ALIASES", "SentinelTransport", "Transport", "take_atomically"]

log = logging.getLogger(__name__)

#: The broker transport this serves (worker.runtime.transport): off on RabbitMQ.
TRANSPORT = REDIS

# KEYS: the queue lists in BRPOP's order, then unacked, unacked_index.
# ARGV[1] the time (kombu scores with the worker's clock), ARGV[2] the holder-record prefix,
# ARGV[3] the node id ('' for none), ARGV[4] the holder record's TTL.
# Returns {list, message} or false. A message that is not kombu's JSON is popped and
# returned unrecorded, as BRPOP would: Python then fails to read it as kombu would.
_TAKE = """
local lists = #KEYS - 2
local unacked, index = KEYS[lists + 1], KEYS[lists + 2]
if redis.call('EXISTS', unpack(KEYS, 1, lists)) == 0 then
  return false  -- all empty (Redis deletes an empty list): one command, not one per list
end
for i = 1, lists do
  local raw = redis.call('RPOP', KEYS[i])
  if raw then
    local ok, message = pcall(cjson.decode, raw)
    local properties = ok and type(message) == 'table' and message['properties']
    local tag = type(properties) == 'table' and properties['delivery_tag']
    if type(tag) ~= 'string' then
      return {KEYS[i], raw}
    end
    local info = properties['delivery_info']
    if type(info) ~= 'table' then
      info = {}
    end
    redis.call('ZADD', index, ARGV[1], tag)
    redis.call('HSET', unacked, tag,
      '[' .. raw .. ',' .. cjson.encode(info['exchange']) .. ',' .. cjson.encode(info['routing_key']) .. ']')
    if ARGV[3] ~= '' then
      local score = redis.call('ZSCORE', index, tag)
      redis.call('SET', ARGV[2] .. tag, cjson.encode({ARGV[3], score}), 'EX', ARGV[4])
    end
    return {KEYS[i], raw}
  end
end
return false
"""


#: What the take uses of kombu's Redis channel (as of kombu 5.7): a kombu without them takes with BRPOP.
_KOMBU_PARTS = ("_queue_cycle", "_q_for_pri", "priority_steps", "unacked_key", "unacked_index_key", "sep")


class TakingQoS(kombu_redis.QoS):
    """kombu's Redis QoS, whose ``append`` skips the Redis writes the take script already made."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.taken: set[str] = set()

    def append(self, message: Any, delivery_tag: str) -> None:
        if delivery_tag in self.taken:
            self.taken.discard(delivery_tag)
            virtual.QoS.append(self, message, delivery_tag)  # the in-memory books only
        else:
            super().append(message, delivery_tag)


class _Taking:
    """The take for kombu's Redis channels: ``_brpop_start``/``_brpop_read`` run the script."""

    QoS = TakingQoS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        channel: Any = self
        #: Seconds between two takes that found every list empty.
        self.take_poll_seconds = get_settings().take_poll_seconds
        self._empty_at = float("-inf")
        self._taking = (
            self.take_poll_seconds > 0
            and channel.ack_emulation
            and not channel.global_keyprefix
            and all(hasattr(channel, name) for name in _KOMBU_PARTS)
        )
        #: Queues consumed without acks: kombu writes no ``unacked`` record for their messages.
        self._no_ack: dict[str, bool] = {}
        #: The take in flight: the script, or kombu's BRPOP.
        self._script_sent = False

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        self._no_ack[queue] = bool(no_ack)
        return super().basic_consume(queue, no_ack, *args, **kwargs)  # type: ignore[misc]

    def _brpop_start(self, timeout: Any = None) -> None:
        channel: Any = self
        self._script_sent = self._taking and not any(self._no_ack.get(q) for q in channel.active_queues)
        if not self._script_sent:
            super()._brpop_start(timeout)  # type: ignore[misc]
            return
        if time.monotonic() - self._empty_at < 0.9 * self.take_poll_seconds:  # 0.9: the timer's own jitter
            self._script_sent = False
            return  # every list was empty a moment ago: the transport's timer ticks the loop again
        queues = channel._queue_cycle.consume(len(channel.active_queues))
        if not queues:
            self._script_sent = False
            return
        keys = [channel._q_for_pri(queue, pri) for pri in channel.priority_steps for queue in queues]
        channel._in_poll = channel.client.connection
        channel._brpop_sent_at = time.monotonic()
        channel.client.connection.send_command(
            "EVAL",
            _TAKE,
            len(keys) + 2,
            *keys,
            channel.unacked_key,
            channel.unacked_index_key,
            repr(time.time()),
            HOLDER_PREFIX,
            node_id() or "",
            holder_ttl(channel),
        )

    def _brpop_read(self, **options: Any) -> bool:
        if not self._script_sent:
            return bool(super()._brpop_read(**options))  # type: ignore[misc]
        channel: Any = self
        try:
            try:
                reply = channel.client.parse_response(channel.client.connection, "EVAL", **options)
            except channel.connection_errors:
                channel.client.connection.disconnect()  # as kombu: the next take reconnects
                raise
            except ResponseError as exc:
                self._taking = False
                log.warning(
                    "Redis refused the take script (%s): taking jobs with BRPOP; a node killed "
                    "while it takes one can lose it",
                    exc,
                )
                raise Empty() from None
            if not reply:
                # From when the take was sent, so the next tick of the poll's timer sends again.
                self._empty_at = channel._brpop_sent_at
                raise Empty()
            dest, item = reply
            queue = bytes_to_str(dest).rsplit(channel.sep, 1)[0]
            channel._queue_cycle.rotate(queue)
            message = loads(bytes_to_str(item))
            tag = message.get("properties", {}).get("delivery_tag") if isinstance(message, dict) else None
            if isinstance(tag, str):
                channel.qos.taken.add(tag)
            channel.connection._deliver(message, queue)
            return True
        finally:
            self._script_sent = False
            channel._in_poll = None
            flush = getattr(channel, "_flush_brpop_reauth", None)
            if flush is not None:
                flush()


class Channel(_Taking, kombu_redis.Channel):
    pass


class SentinelChannel(_Taking, kombu_redis.SentinelChannel):
    pass


class _TakingTransport:
    """Keeps the event loop ticking every ``ASR_TAKE_POLL_SECONDS`` for the channels' next take."""

    _tick: Any = None

    def register_with_event_loop(self, connection: Any, loop: Any) -> None:
        super().register_with_event_loop(connection, loop)  # type: ignore[misc]
        if self._tick is not None:  # a reconnection: one timer, not one more per connection
            self._tick.cancel()
        poll = get_settings().take_poll_seconds
        self._tick = loop.call_repeatedly(poll, _tick) if poll > 0 else None


def _tick() -> None:
    """Nothing: the timer only wakes the event loop, whose tick starts the next take."""


class Transport(_TakingTransport, kombu_redis.Transport):
    Channel = Channel


class SentinelTransport(_TakingTransport, kombu_redis.SentinelTransport):
    Channel = SentinelChannel


#: URL scheme -> this module's transport, for kombu's ``TRANSPORT_ALIASES``.
ALIASES = {"redis": "Transport", "rediss": "Transport", "sentinel": "SentinelTransport"}


def take_atomically(**_: Any) -> None:
    """``worker_init``: this process's Redis connections take with the script from here on.

    Through the aliases, not Celery's ``broker_transport``: kombu's ``Connection.switch``
    (a failover to the next URL of ``broker_url``, as with several Sentinels) resolves the
    transport from the URL's scheme again. Children inherit it when they fork.
    """
    if get_settings().take_poll_seconds <= 0:
        return
    for scheme, name in ALIASES.items():
        kombu.transport.TRANSPORT_ALIASES[scheme] = f"{__name__}:{name}"
        # kombu caches a resolved alias; the app resolved these on import (worker.runtime.transport).
        getattr(kombu.transport, "_transport_cache", {}).pop(scheme, None)
