"""The job queues, declared alike by producers and workers: plain on Redis, quorum on RabbitMQ.

On RabbitMQ (an ``amqp://`` broker URL) every job queue is a quorum queue: Raft
replicates each message to a majority of the broker's nodes before the publisher's
confirm, so a confirmed job survives the loss of any minority of them. The broker
counts each message's deliveries (``x-delivery-count``) and, past
``x-delivery-limit`` (``ASR_MAX_DELIVERIES``), dead-letters it to
``<queue>.dead-letter``, a quorum queue of its own that nobody consumes.
``x-consumer-timeout`` asks RabbitMQ 3.12+ to let a worker hold a delivery
unacknowledged for as long as a job may run (docs/deploy.md says what older servers
need). On Redis, nothing changes: queues are Celery's plain ones.

A queue that already exists is used as it is, whatever it was declared with: a
producer with other settings, or an operator's policy, never makes a publish fail
with ``PRECONDITION_FAILED``.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.app.amqp import AMQP, Queues
from kombu import Connection, Queue

__all__ = [
    "DEAD_LETTER_SUFFIX",
    "JobAMQP",
    "JobQueue",
    "dead_letter_name",
    "delivery_count",
    "is_amqp",
    "job_queue",
    "queue_settings",
]

log = logging.getLogger(__name__)

#: ``<queue>`` + this is where RabbitMQ puts a job past the delivery cap.
DEAD_LETTER_SUFFIX = ".dead-letter"
#: Seconds a delivery may stay unacknowledged past the hard time limit (``x-consumer-timeout``).
CONSUMER_TIMEOUT_MARGIN = 600.0
#: The workers' default ``ASR_HARD_TIME_LIMIT`` and ``ASR_MAX_DELIVERIES``.
DEFAULT_HARD_TIME_LIMIT = 6 * 3600.0 + 600
DEFAULT_MAX_DELIVERIES = 3
#: The header a quorum queue sets on each delivery: how many earlier ones were returned.
DELIVERY_COUNT_HEADER = "x-delivery-count"


def is_amqp(broker_url: str) -> bool:
    """True when ``broker_url`` is RabbitMQ's (``amqp://``, ``amqps://``); no connection is made."""
    try:
        return bool(Connection(broker_url).transport.driver_type == "amqp")
    except (KeyError, ValueError, ImportError):
        return False  # not a transport kombu knows: Celery says so, typed, when it connects


def queue_settings(*, max_deliveries: int, hard_time_limit: float) -> dict[str, Any]:
    """``max_deliveries`` and ``consumer_timeout`` for :func:`job_queue` from the workers'
    ``ASR_MAX_DELIVERIES`` and ``ASR_HARD_TIME_LIMIT`` (0: none), so that a producer that
    declares a queue first declares it as the workers would."""
    return {
        "max_deliveries": max(1, int(max_deliveries)),
        "consumer_timeout": hard_time_limit + CONSUMER_TIMEOUT_MARGIN if hard_time_limit > 0 else None,
    }


def dead_letter_name(queue: str) -> str:
    return queue + DEAD_LETTER_SUFFIX


def delivery_count(request: Any) -> int | None:
    """The broker's count of earlier deliveries of a task's message (a Celery request, or
    celery-batches' ``SimpleRequest``), or None where the broker keeps none (Redis)."""
    headers = getattr(request, "request_dict", None)
    value = (
        headers.get(DELIVERY_COUNT_HEADER)
        if isinstance(headers, dict)
        else getattr(request, DELIVERY_COUNT_HEADER, None)
    )
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class JobQueue(Queue):
    """A quorum job queue: declared (with its dead-letter queue) only when it does not exist yet."""

    def declare(self, nowait: bool = False, channel: Any = None) -> Any:
        channel = channel or self.channel
        if _exists(channel, self.name):
            return self.name
        dead = (getattr(self, "queue_arguments", None) or {}).get("x-dead-letter-routing-key")
        if dead:
            Queue(dead, durable=True, queue_arguments={"x-queue-type": "quorum"}).bind(channel).declare()
        return super().declare(nowait=nowait, channel=channel)


def _exists(channel: Any, name: str) -> bool:
    # A passive declare that finds nothing closes its channel: ask on a channel of its own.
    probe = channel.connection.channel()
    try:
        probe.queue_declare(name, passive=True)
    except Exception as exc:
        if getattr(exc, "code", None) == 404:
            return False
        raise
    else:
        probe.close()
        return True


def job_queue(name: str, *, amqp: bool, max_deliveries: int, consumer_timeout: float | None) -> Queue:
    """The queue ``name`` as both halves declare it.

    Args:
        amqp: the broker is RabbitMQ (else a plain Celery queue).
        max_deliveries: deliveries after which the broker dead-letters a job (``ASR_MAX_DELIVERIES``).
        consumer_timeout: seconds a consumer may hold a delivery unacknowledged (None: the server's).
    """
    if not amqp:
        return Queue(name)
    arguments: dict[str, Any] = {
        "x-queue-type": "quorum",
        # Deliveries 1..max_deliveries+1 reach a worker (counts 0..max_deliveries): the last
        # one is the worker's to refuse with RedeliveryLimitError; one more return and the
        # broker dead-letters the job by itself.
        "x-delivery-limit": max_deliveries,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dead_letter_name(name),
    }
    if consumer_timeout:
        arguments["x-consumer-timeout"] = int(consumer_timeout * 1000)
    return JobQueue(name, durable=True, queue_arguments=arguments)


class JobQueues(Queues):
    """Celery's queue table, whose missing queues (``-Q asr-large``, ``queue=...``) copy the job queues'."""

    def new_missing(self, name: str) -> Queue:
        like = next((q for q in self.values() if isinstance(q, JobQueue)), None)
        if like is None:
            return super().new_missing(name)
        arguments = dict(getattr(like, "queue_arguments", None) or {})
        arguments["x-dead-letter-routing-key"] = dead_letter_name(name)
        return JobQueue(name, durable=True, queue_arguments=arguments)


class JobAMQP(AMQP):
    """Celery's AMQP layer with :class:`JobQueues` (``Celery(..., amqp="asr_protocol.queues:JobAMQP")``)."""

    queues_cls = JobQueues
