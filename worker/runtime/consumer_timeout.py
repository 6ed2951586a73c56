"""Say at start when RabbitMQ may take a long job back from this worker.

The worker acknowledges a job when it ends, and RabbitMQ closes the channel of a consumer
that holds a delivery unacknowledged past its ``consumer_timeout`` (30 min by default),
then delivers the job again. The job queues ask for a longer one
(``x-consumer-timeout``, :mod:`asr_protocol.queues`), which RabbitMQ honours from 3.12
on; an older server uses its own setting only, so the worker names the value it needs.
"""

from __future__ import annotations

import logging
from typing import Any

from asr_protocol.queues import CONSUMER_TIMEOUT_MARGIN
from worker.runtime.transport import AMQP

__all__ = ["check_server", "honours_queue_timeout"]

log = logging.getLogger(__name__)

#: The broker transport this serves (worker.runtime.transport).
TRANSPORT = AMQP
#: The first RabbitMQ release that reads ``x-consumer-timeout`` from a queue's arguments.
QUEUE_TIMEOUT_SINCE = (3, 12)


def honours_queue_timeout(version: str) -> bool:
    """Whether a RabbitMQ of ``version`` ("3.10.8") reads a queue's ``x-consumer-timeout``."""
    parts = []
    for part in version.split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts) >= QUEUE_TIMEOUT_SINCE


def check_server(sender: Any = None, **_: Any) -> None:
    """On ``worker_ready``: warn when the server ignores the queues' consumer timeout."""
    app = getattr(sender, "app", None)
    if app is None:
        return
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1)
            properties = connection.connection.server_properties or {}
    except Exception:
        log.debug("could not read the broker's version", exc_info=True)
        return
    version = properties.get("version", b"")
    version = version.decode() if isinstance(version, bytes) else str(version)
    if version and not honours_queue_timeout(version):
        needed = app.conf.task_time_limit
        log.warning(
            "RabbitMQ %s ignores the queues' x-consumer-timeout: its own consumer_timeout "
            "(30 min unless set) must be above %s ms, or a longer job is taken back and run "
            "again (docs/deploy.md \"RabbitMQ as the broker\")",
            version,
            int((needed + CONSUMER_TIMEOUT_MARGIN) * 1000) if needed else "the longest job in",
        )
