"""Count how often a job has been handed to a worker, to stop poison jobs.

With ``task_reject_on_worker_lost`` a job whose child dies goes back on the
queue. A file that kills the decoder every time would loop forever, so each
start of a job is counted, and past ``ASR_MAX_DELIVERIES`` the job fails with
:class:`RedeliveryLimitError`. On Redis the count is a counter in the result
backend; on RabbitMQ it is the quorum queue's own ``x-delivery-count``, and a job
refused there is dead-lettered to ``<queue>.dead-letter`` (:func:`dead_letter`),
its error stored as its result. Retries that the task asks for (``self.retry``)
count separately.
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

from celery import signals
from celery.exceptions import Reject

from worker.pipeline.errors import RedeliveryLimitError
from worker.runtime.connections import backend_client, riding_out

__all__ = ["check_delivery", "dead_letter", "uncount_delivery"]

log = logging.getLogger(__name__)

#: Counters outlive any job's redeliveries, then vanish.
COUNTER_TTL = 7 * 24 * 3600


def _key(task_id: str, retries: int) -> str:
    return f"asr:deliveries:{task_id}:{retries}"


def check_delivery(
    backend: Any, task_id: str | None, retries: int, limit: int, *, broker_count: int | None = None
) -> int:
    """Record one more start of this job and return how many there have been.

    Args:
        broker_count: earlier deliveries as the broker counted them (RabbitMQ's
            ``x-delivery-count``); None counts in the Redis result backend instead.

    Raises:
        RedeliveryLimitError: the job has started more than ``limit`` times.
    """
    if broker_count is not None:
        count = broker_count + 1
    else:
        client = backend_client(backend)
        if not task_id or client is None:  # not a Redis backend, or called directly
            return 1
        key = _key(task_id, retries)

        def count_one() -> int:
            # A Redis outage at the start is ridden out: failing here would lose the job.
            pipe = client.pipeline()
            pipe.incr(key)
            pipe.expire(key, COUNTER_TTL)
            return int(pipe.execute()[0])

        count = riding_out(count_one)
    if count > limit:
        raise RedeliveryLimitError(
            f"job {task_id} was started {count} times and its worker process died each time "
            f"(ASR_MAX_DELIVERIES={limit}); the file may crash the decoder"
        )
    if count > 1:
        log.warning("job %s started again (delivery %d of at most %d)", task_id, count, limit)
    return count


def uncount_delivery(backend: Any, task_id: str | None, retries: int) -> None:
    """Take back the start :func:`check_delivery` just counted: the job is handed on, not run here."""
    client = backend_client(backend)
    if task_id and client is not None:
        riding_out(lambda: client.decr(_key(task_id, retries)))


def dead_letter(task: Any, exc: RedeliveryLimitError) -> NoReturn:
    """Fail the running job with ``exc`` and have the broker dead-letter its message.

    The error is stored as the job's result (and its webhook told) before the
    message is rejected without requeue, which the quorum queue's
    ``x-dead-letter-routing-key`` sends to ``<queue>.dead-letter``.
    """
    request = task.request
    task.backend.mark_as_failure(request.id, exc, request=request)
    signals.task_failure.send(
        sender=task, task_id=request.id, exception=exc, args=request.args, kwargs=request.kwargs,
        traceback=None, einfo=None,
    )
    log.error("job %s dead-lettered: %s", request.id, exc)
    raise Reject(str(exc), requeue=False) from exc
