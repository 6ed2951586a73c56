"""A submitted job: its handle (:class:`Job`) and its status (:class:`JobStatus`)."""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from celery.result import AsyncResult

from asr_protocol.names import CLIP_TASK_NAME, DETECT_LANGUAGE_TASK, PIECE_TASK_NAME, TASK_NAME
from asr_protocol.redact import masked
from asr_protocol.states import ENDED_STATES, PENDING_STATES
from producer.errors import BrokerUnavailableError, JobTimeoutError, ProducerError, TranscriptionFailed

if TYPE_CHECKING:
    from producer.client import Client

__all__ = [
    "CLIP_TASK_NAME",
    "DETECT_LANGUAGE_TASK",
    "ENDED_STATES",
    "PENDING_STATES",
    "PIECE_TASK_NAME",
    "TASK_NAME",
    "BrokerUnavailableError",
    "Job",
    "JobStatus",
    "JobTimeoutError",
    "ProducerError",
    "TranscriptionFailed",
    "first_arg",
    "message_path",
]


@dataclass
class Job:
    """A handle on one submitted job."""

    id: str
    path: str
    client: Client = field(repr=False)

    @property
    def _result(self) -> AsyncResult:
        return AsyncResult(self.id, app=self.client.app)

    @property
    def state(self) -> str:
        """Celery's state: PENDING, STARTED, PROGRESS, SUCCESS, FAILURE, ..."""
        return self._result.state

    @property
    def progress(self) -> dict[str, float] | None:
        """``{"seconds_done", "seconds_total", "percent"}`` while the job runs, else ``None``."""
        # One read of the stored state and its meta: read apart, a STARTED meta (pid, hostname)
        # could pass for the PROGRESS that replaced it in between.
        meta = self.client.app.backend.get_task_meta(self.id)
        info = meta.get("result")
        if meta.get("status") == "PROGRESS" and isinstance(info, dict):
            return info
        return None

    def ready(self) -> bool:
        """Whether the job has ended (succeeded or failed)."""
        return self._result.ready()

    def result(self, timeout: float | None = None, *, interval: float = 0.2) -> dict[str, Any]:
        """Wait for the job and return its transcript.

        Raises:
            TranscriptionFailed: the worker failed the job.
            JobTimeoutError: it did not end within ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        result = self._result
        while not result.ready():
            if deadline is not None and time.monotonic() >= deadline:
                raise JobTimeoutError(f"job {self.id} ({self.path}) did not end within {timeout:g} s")
            time.sleep(interval)
        if result.successful():
            return result.result
        error = result.result
        raise TranscriptionFailed(self.id, type(error).__name__, str(error))


@dataclass(frozen=True)
class JobStatus:
    """What the result backend, the workers and the queue know about one job."""

    id: str
    #: Celery's state; in :meth:`Client.list_jobs` also RECEIVED (held by a worker, not
    #: started) and SCHEDULED (held until its ETA, e.g. a webhook waiting to retry).
    state: str
    #: The task's name (``asr.transcribe``, ...), when known.
    name: str | None = None
    #: The audio path (the task's first argument; a URL without its query string), when known.
    path: str | None = None
    #: The worker's hostname that runs (or ran, or holds) the job.
    worker: str | None = None
    #: ``{"seconds_done", "seconds_total", "percent"}`` in state PROGRESS.
    progress: dict[str, float] | None = None
    #: ``"ErrorType: message"`` of a FAILURE, or the reason of a REVOKED job.
    error: str | None = None
    #: For a queued job: 1 is the next the workers take.
    queue_position: int | None = None
    #: False when nothing knows the id: no stored state, no worker holds it, not queued.
    known: bool = True


def first_arg(args: Any) -> str | None:
    """A task's first argument (its audio) as shown: a URL without its query string."""
    if isinstance(args, (list, tuple)) and args:
        return str(masked(str(args[0])))
    return None


def message_path(message: dict[str, Any]) -> str | None:
    """The first argument of a queued task message (protocol 2: body is ``[args, kwargs, embed]``)."""
    try:
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        return first_arg(json.loads(body)[0])
    except (KeyError, IndexError, TypeError, ValueError, binascii.Error):
        return None
