"""Cancelling a job split across the fleet: both halves of the protocol, in one module.

A fanned-out job keeps one Redis hash (:data:`PROGRESS_KEY`): ``pieces`` (how many),
``<index>`` = seconds each piece has done, ``done:<index>`` once a piece finished, and
``cancelled`` once the job was cancelled. The pieces publish the job's summed progress
under :data:`LOCK_KEY`; a cancel (:func:`cancel_split`, called by the producer) takes
the same lock, so no piece stores ``PROGRESS`` over the job's ``REVOKED``. A piece not yet
started sees the mark and returns; a running one stops at its next progress report; the
merge leaves the job ``REVOKED``. The pieces are not revoked themselves: a revoked chord
part would make Celery store the chord's error over the job's ``REVOKED``.

Only redis-py calls here: the producer and the worker both import this module, neither's code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from redis.exceptions import LockError

__all__ = [
    "CANCELLED",
    "JobCancelled",
    "cancel_split",
    "forget",
    "is_cancelled",
    "mark_split",
    "publish_piece",
]

log = logging.getLogger(__name__)

PROGRESS_KEY = "asr:fanout:{}"
LOCK_KEY = "asr:fanout:{}:lock"
CANCELLED = "cancelled"
PROGRESS_TTL = 24 * 3600
#: How long a piece waits for, and may hold, the lock that orders the job's progress.
LOCK_SECONDS = 5
#: How long a cancel waits for that lock.
CANCEL_LOCK_SECONDS = 10


class JobCancelled(Exception):
    """The job this piece belongs to was cancelled: the piece stops where it is."""


def mark_split(redis: Any, job_id: str, pieces: int) -> None:
    """The mark a cancel looks for: this job runs as ``pieces`` pieces."""
    key = PROGRESS_KEY.format(job_id)
    redis.pipeline().hset(key, "pieces", pieces).expire(key, PROGRESS_TTL).execute()


def is_cancelled(redis: Any, job_id: str) -> bool:
    return bool(redis.hexists(PROGRESS_KEY.format(job_id), CANCELLED))


def forget(redis: Any, job_id: str) -> None:
    """The job ended: its hash goes."""
    redis.delete(PROGRESS_KEY.format(job_id))


def publish_piece(
    redis: Any,
    job_id: str,
    index: int,
    done: float,
    total: float,
    store: Callable[[dict[Any, Any]], None],
) -> None:
    """Record piece ``index``'s seconds done and ``store`` the job's hash under the lock.

    Raises:
        JobCancelled: the job was cancelled; nothing was stored.
    """
    key = PROGRESS_KEY.format(job_id)
    pipe = redis.pipeline()
    pipe.hset(key, str(index), float(done))
    if done >= total:
        pipe.hset(key, f"done:{index}", 1)
    pipe.expire(key, PROGRESS_TTL)
    pipe.execute()
    # Read the sum and store it under one lock: two children storing unlocked could land
    # their sums in the other order, and the job's progress would go back.
    lock = redis.lock(LOCK_KEY.format(job_id), timeout=LOCK_SECONDS, blocking_timeout=LOCK_SECONDS)
    try:
        with lock:
            fields = redis.hgetall(key)
            if CANCELLED in fields or CANCELLED.encode() in fields:
                raise JobCancelled(job_id)
            store(fields)
    except LockError:
        log.debug("job %s: progress of piece %d not published (lock busy)", job_id, index)


def cancel_split(redis: Any, job_id: str, *, ended: Callable[[], bool], revoke: Callable[[], None]) -> bool:
    """Cancel a job that runs as pieces; False if it does not, or has ended (``ended()``).

    ``revoke`` stores the job's ``REVOKED``: it runs under the pieces' lock.
    """
    key = PROGRESS_KEY.format(job_id)
    lock = redis.lock(
        LOCK_KEY.format(job_id), timeout=CANCEL_LOCK_SECONDS, blocking_timeout=CANCEL_LOCK_SECONDS
    )
    with lock:
        if not redis.exists(key) or redis.hexists(key, CANCELLED) or ended():
            return False
        redis.hset(key, CANCELLED, 1)
        revoke()
    return True
