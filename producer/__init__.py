"""Submit audio paths to the transcription workers and read the transcripts.

    import producer
    job = producer.submit("/shared/audio/call.wav", language="en")
    print(job.id, job.state, job.progress)
    result = job.result(timeout=600)          # or producer.transcribe(path)
    producer.status(job.id)                   # state, progress, worker; producer.list_jobs()
    producer.cancel(job.id)                   # queued: never runs; running: stopped; -> REVOKED

The functions use a client built from the environment (``REDIS_URL``, or
``CELERY_BROKER_URL`` and ``CELERY_RESULT_BACKEND``; ``ASR_QUEUE``). Build a
:class:`Client` to talk to another broker.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from typing import Any

from producer.client import (
    BrokerUnavailableError,
    Client,
    Job,
    JobStatus,
    JobTimeoutError,
    ProducerError,
    TranscriptionFailed,
)

__all__ = [
    "BrokerUnavailableError",
    "Client",
    "Job",
    "JobStatus",
    "JobTimeoutError",
    "ProducerError",
    "TranscriptionFailed",
    "cancel",
    "detect_language",
    "get_job",
    "list_jobs",
    "status",
    "submit",
    "submit_many",
    "transcribe",
]


@functools.lru_cache(maxsize=1)
def _default_client() -> Client:
    return Client()


def submit(path: str | os.PathLike[str], *, queue: str | None = None, **options: Any) -> Job:
    """Enqueue one file; returns its :class:`Job` (``job.id`` is the task id)."""
    return _default_client().submit(path, queue=queue, **options)


def submit_many(
    paths: Iterable[str | os.PathLike[str]], *, queue: str | None = None, **options: Any
) -> list[Job]:
    """Enqueue several files, one job each."""
    return _default_client().submit_many(paths, queue=queue, **options)


def transcribe(
    path: str | os.PathLike[str], *, timeout: float | None = 3600.0, queue: str | None = None, **options: Any
) -> dict[str, Any]:
    """Submit one file and wait for its transcript (a dict, see the README's result schema)."""
    return _default_client().transcribe(path, timeout=timeout, queue=queue, **options)


def get_job(task_id: str) -> Job:
    """A handle on an earlier job by its task id."""
    return _default_client().job(task_id)


def status(task_id: str) -> JobStatus:
    """State, progress, path and worker of a job (see :meth:`Client.status`)."""
    return _default_client().status(task_id)


def cancel(task_id: str, *, timeout: float = 10.0) -> JobStatus:
    """Cancel a queued or running job; it ends REVOKED (see :meth:`Client.cancel`)."""
    return _default_client().cancel(task_id, timeout=timeout)


def list_jobs() -> list[JobStatus]:
    """The jobs the workers hold now (see :meth:`Client.list_jobs`)."""
    return _default_client().list_jobs()


def detect_language(path: str | os.PathLike[str], *, timeout: float | None = 300.0) -> dict[str, Any]:
    """The language spoken in the first 30 s (needs a worker with a multilingual model)."""
    return _default_client().detect_language(path, timeout=timeout)
