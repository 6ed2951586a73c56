"""How the producer publishes: Celery settings per broker transport, and what counts as unconfirmed.

On Redis a publish is an ``LPUSH`` (``visibility_timeout`` matters there). On RabbitMQ
(``amqp://``) the job queues are quorum queues (:mod:`asr_protocol.queues`) and every
publish waits for the broker's confirm, which comes once a majority of the queue's
replicas hold the job; a nack, a confirm that does not come within
:data:`CONFIRM_TIMEOUT`, or a lost connection makes the submission fail with
``BrokerUnavailableError`` instead of a job that may not exist.
"""

from __future__ import annotations

from typing import Any

from amqp.exceptions import MessageNacked
from kombu.exceptions import OperationalError

from asr_protocol.queues import is_amqp, job_queue, queue_settings
from producer.config import ProducerSettings

__all__ = ["AMQP_CLASS", "CONFIRM_TIMEOUT", "NOT_CONFIRMED", "app_settings", "publish_options"]

#: Seconds a publish waits for RabbitMQ's confirm.
CONFIRM_TIMEOUT = 10.0
#: What a failed publish raises: the broker is unreachable, refused the job, or never confirmed it.
NOT_CONFIRMED: tuple[type[BaseException], ...] = (OperationalError, MessageNacked, TimeoutError)
#: Celery's AMQP layer that declares missing queues as job queues.
AMQP_CLASS = "asr_protocol.queues:JobAMQP"


def app_settings(settings: ProducerSettings, broker_url: str, queue: str) -> dict[str, Any]:
    """The transport-specific part of the producer's Celery settings."""
    if not is_amqp(broker_url):
        return {
            "broker_transport_options": {
                "visibility_timeout": settings.visibility_timeout,
                **settings.sentinel_options(broker_url),
            },
        }
    return {
        "broker_transport_options": {"confirm_publish": True},
        # Declared as the workers declare it, when no worker has yet; an existing
        # queue is used as it is.
        "task_queues": [
            job_queue(
                queue,
                amqp=True,
                **queue_settings(
                    max_deliveries=settings.max_deliveries, hard_time_limit=settings.hard_time_limit
                ),
            )
        ],
        "task_default_queue": queue,
    }


def queue_length(channel: Any, queue: str) -> int:
    """Messages ready in RabbitMQ queue ``queue`` (0 when it does not exist), by a passive declare."""
    probe = channel.connection.channel()
    try:
        return int(probe.queue_declare(queue, passive=True).message_count)
    except Exception as exc:
        if getattr(exc, "code", None) == 404:
            return 0
        raise
    finally:
        if probe.is_open:
            probe.close()


def publish_options(broker_url: str) -> dict[str, Any]:
    """Options for each ``send_task``: a bound wait for RabbitMQ's confirm."""
    return {"confirm_timeout": CONFIRM_TIMEOUT} if is_amqp(broker_url) else {}
