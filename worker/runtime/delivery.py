"""Count how often a job has been handed to a worker, to stop poison jobs.

With ``task_reject_on_worker_lost`` a job whose child dies goes back on the
queue. A file that kills the decoder every time would loop forever, so each
start of a job increments a counter in Redis (the result backend), and past
``ASR_MAX_DELIVERIES`` the job fails with :class:`RedeliveryLimitError`.
Retries that the task asks for (``self.retry``) count separately.
"""

from __future__ import annotations

import logging
from typing import Any

from worker.pipeline.errors import RedeliveryLimitError
from worker.runtime.connections import backend_client, riding_out

__all__ = ["check_delivery", "uncount_delivery"]

log = logging.getLogger(__name__)

#: Counters outlive any job's redeliveries, then vanish.
COUNTER_TTL = 7 * 24 * 3600


def _key(task_id: str, retries: int) -> str:
    return f"asr:deliveries:{task_id}:{retries}"


def check_delivery(backend: Any, task_id: str | None, retries: int, limit: int) -> int:
    """Record one more start of this job and return how many there have been.

    Raises:
        RedeliveryLimitError: the job has started more than ``limit`` times.
    """
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
