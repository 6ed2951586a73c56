"""Enqueue transcription jobs and read their results.

The producer reaches the worker's task by its name, ``asr.transcribe``; it
never imports ``worker``, so another service needs only ``celery`` and this
package. Audio is sent as a path on storage the workers share, never as bytes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from celery import Celery
from celery.result import AsyncResult
from kombu.exceptions import OperationalError

from producer import config

__all__ = [
    "TASK_NAME",
    "BrokerUnavailableError",
    "Client",
    "Job",
    "JobTimeoutError",
    "ProducerError",
    "TranscriptionFailed",
]

TASK_NAME = "asr.transcribe"
#: States in which a job has not ended yet.
PENDING_STATES = frozenset({"PENDING", "RECEIVED", "STARTED", "RETRY", "PROGRESS"})


class ProducerError(Exception):
    """Base class of the producer's errors."""


class BrokerUnavailableError(ProducerError):
    """The broker or the result backend cannot be reached."""


class JobTimeoutError(ProducerError, TimeoutError):
    """A job did not end within the time the caller waited."""


class TranscriptionFailed(ProducerError):
    """The worker failed the job; ``error_type`` is the worker's error class name."""

    def __init__(self, task_id: str, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.task_id = task_id
        self.error_type = error_type
        self.message = message


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
        result = self._result
        info = result.info
        if result.state == "PROGRESS" and isinstance(info, dict):
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


class Client:
    """A connection to one broker and result backend."""

    def __init__(
        self,
        broker_url: str | None = None,
        backend_url: str | None = None,
        *,
        queue: str | None = None,
    ) -> None:
        self.broker_url = broker_url or config.broker_url()
        self.backend_url = backend_url or config.backend_url()
        self.queue = queue or config.default_queue()
        self.app = Celery("producer", broker=self.broker_url, backend=self.backend_url, set_as_current=False)
        self.app.conf.update(
            task_serializer="json",
            accept_content=["json"],
            result_accept_content=["json"],
            result_serializer="json",
            result_extended=True,
            # Fail fast when the broker is down instead of hanging a caller.
            broker_connection_timeout=5,
            task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
            broker_transport_options={"visibility_timeout": config.visibility_timeout()},
            result_backend_transport_options={
                "retry_policy": {"max_retries": 3},
                "visibility_timeout": config.visibility_timeout(),
            },
        )
        self._connected = False

    def check_connection(self) -> None:
        """Reach the broker and the result backend once, failing fast with a clear error.

        Raises:
            BrokerUnavailableError: either cannot be reached (the message hides passwords).
        """
        try:
            with self.app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=5)
        except Exception as exc:
            raise BrokerUnavailableError(
                f"cannot reach the broker at {config.mask_url(self.broker_url)}: {exc}"
            ) from None
        client = getattr(self.app.backend, "client", None)
        if client is not None:
            try:
                client.ping()
            except Exception as exc:
                raise BrokerUnavailableError(
                    f"cannot reach the result backend at {config.mask_url(self.backend_url)}: {exc}"
                ) from None
        self._connected = True

    def submit(self, path: str | os.PathLike[str], *, queue: str | None = None, **options: Any) -> Job:
        """Enqueue one file. A relative path is made absolute: workers do not share our cwd.

        Raises:
            BrokerUnavailableError: the broker cannot be reached.
        """
        audio_path = os.path.abspath(os.fspath(path))
        if not self._connected:
            self.check_connection()
        try:
            result = self.app.send_task(
                TASK_NAME, args=[audio_path], kwargs=options, queue=queue or self.queue
            )
        except OperationalError as exc:
            raise BrokerUnavailableError(
                f"cannot reach the broker at {config.mask_url(self.broker_url)}: {exc}"
            ) from None
        return Job(result.id, audio_path, self)

    def submit_many(
        self, paths: Iterable[str | os.PathLike[str]], *, queue: str | None = None, **options: Any
    ) -> list[Job]:
        """Enqueue several files with the same options, one job each."""
        return [self.submit(path, queue=queue, **options) for path in paths]

    def job(self, task_id: str, path: str = "") -> Job:
        """A handle on a job submitted earlier (by any producer), by its task id."""
        return Job(task_id, path, self)

    def transcribe(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float | None = 3600.0,
        queue: str | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """Submit one file and wait for its transcript.

        Raises:
            TranscriptionFailed, JobTimeoutError, BrokerUnavailableError
        """
        return self.submit(path, queue=queue, **options).result(timeout)

    def close(self) -> None:
        """Release the broker and backend connections."""
        self.app.close()
