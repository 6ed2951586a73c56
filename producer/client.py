"""Enqueue transcription jobs and read their results.

The producer reaches the worker's task by its name, ``asr.transcribe``; it
never imports ``worker``, so another service needs only ``celery`` and this
package. Audio is sent as a path on storage the workers share, never as bytes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError

from asr_protocol import cancel, redact
from asr_protocol.names import CLIP_TASK_NAME, DETECT_LANGUAGE_TASK, PIECE_TASK_NAME, TASK_NAME
from asr_protocol.states import ENDED_STATES, PENDING_STATES
from producer import broker
from producer.config import ProducerSettings
from producer.errors import BrokerUnavailableError, JobTimeoutError, ProducerError, TranscriptionFailed
from producer.job import Job, JobStatus, first_arg, message_path
from producer.upload import job_location

__all__ = [
    "CLIP_TASK_NAME",
    "TASK_NAME",
    "BrokerUnavailableError",
    "Client",
    "Job",
    "JobStatus",
    "JobTimeoutError",
    "ProducerError",
    "TranscriptionFailed",
]


class Client:
    """A connection to one broker and result backend."""

    def __init__(
        self,
        broker_url: str | None = None,
        backend_url: str | None = None,
        *,
        queue: str | None = None,
        settings: ProducerSettings | None = None,
    ) -> None:
        #: The environment's settings (:meth:`ProducerSettings.from_env` unless given).
        self.settings = settings or ProducerSettings.from_env()
        self.broker_url = broker_url or self.settings.broker_url
        self.backend_url = backend_url or self.settings.backend_url
        self.queue = queue or self.settings.queue
        self.app = Celery(
            "producer",
            broker=self.broker_url,
            backend=self.backend_url,
            set_as_current=False,
            amqp=broker.AMQP_CLASS,
        )
        self.app.conf.update(
            task_serializer="json",
            accept_content=["json"],
            result_accept_content=["json"],
            result_serializer="json",
            result_extended=True,
            # Fail fast when the broker is down instead of hanging a caller.
            broker_connection_timeout=5,
            task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
            result_backend_transport_options={
                "retry_policy": {"max_retries": 3},
                "visibility_timeout": self.settings.visibility_timeout,
                **self.settings.sentinel_options(self.backend_url),
            },
            **broker.app_settings(self.settings, self.broker_url, self.queue),
        )
        self._publish = broker.publish_options(self.broker_url)
        self._searchable = not broker.is_amqp(self.broker_url)
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
                f"cannot reach the broker at {redact.mask_url(self.broker_url)}: {exc}"
            ) from None
        client = self._backend_redis()
        if client is not None:
            try:
                client.ping()
            except Exception as exc:
                raise BrokerUnavailableError(
                    f"cannot reach the result backend at {redact.mask_url(self.backend_url)}: {exc}"
                ) from None
        self._connected = True

    def _not_sent(self, exc: BaseException) -> BrokerUnavailableError:
        where = redact.mask_url(self.broker_url)
        if isinstance(exc, OperationalError):
            return BrokerUnavailableError(f"cannot reach the broker at {where}: {exc}")
        return BrokerUnavailableError(
            f"the broker at {where} did not confirm the job: {type(exc).__name__} {exc}".rstrip()
        )

    def submit(
        self, path: str | os.PathLike[str], *, queue: str | None = None, batch: bool = False, **options: Any
    ) -> Job:
        """Enqueue one file. A relative path is made absolute: workers do not share our cwd;
        a URL (``s3://``, ``https://``) is sent as it is (README "Audio from URLs").

        ``batch=True`` sends it as a clip job (``asr.transcribe_clip``): a worker may
        decode it in one batch with other waiting clips; its result is the same
        (README "Cross-job batching"). ``known_speakers`` (name -> reference recording)
        paths are made absolute like ``path`` (docs/diarization.md).

        Raises:
            BrokerUnavailableError: the broker cannot be reached.
        """
        audio_path = job_location(path)
        if isinstance(options.get("known_speakers"), dict):
            options["known_speakers"] = {n: job_location(p) for n, p in options["known_speakers"].items()}
        if not self._connected:
            self.check_connection()
        try:
            result = self.app.send_task(
                CLIP_TASK_NAME if batch else TASK_NAME,
                args=[audio_path],
                kwargs=options,
                queue=queue or self.queue,
                **redact.reprs([audio_path], options),
                **self._publish,
            )
        except broker.NOT_CONFIRMED as exc:
            raise self._not_sent(exc) from None
        return Job(result.id, audio_path, self)

    def submit_many(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        queue: str | None = None,
        batch: bool = False,
        **options: Any,
    ) -> list[Job]:
        """Enqueue several files with the same options, one job each."""
        return [self.submit(path, queue=queue, batch=batch, **options) for path in paths]

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

    def detect_language(
        self, path: str | os.PathLike[str], *, timeout: float | None = 300.0, queue: str | None = None
    ) -> dict[str, Any]:
        """The language spoken in the first 30 s of a file (``asr.detect_language``).

        Returns ``{"language", "probability", "top": [{"language", "probability"}, ...], ...}``.

        Raises:
            TranscriptionFailed: e.g. ``InvalidOptionsError`` from a worker with an English-only model.
            JobTimeoutError, BrokerUnavailableError
        """
        audio_path = job_location(path)
        if not self._connected:
            self.check_connection()
        try:
            sent = self.app.send_task(
                DETECT_LANGUAGE_TASK,
                args=[audio_path],
                queue=queue or self.queue,
                **redact.reprs([audio_path]),
                **self._publish,
            )
        except broker.NOT_CONFIRMED as exc:
            raise self._not_sent(exc) from None
        return Job(sent.id, audio_path, self).result(timeout)

    def status(self, task_id: str, *, queue: str | None = None) -> JobStatus:
        """State, progress, path and worker of a job, by its task id.

        Celery stores nothing for a job no worker has taken yet (its state is
        PENDING, as for an id never submitted), so for PENDING the workers are
        asked whether they hold it and ``queue`` (default: this client's) is
        searched (a Redis queue; a RabbitMQ one cannot be); ``known`` is False when neither has it.

        Raises:
            BrokerUnavailableError: the broker or the result backend cannot be reached.
        """
        if not self._connected:
            self.check_connection()
        found = self._stored_status(task_id)
        if found.state != "PENDING":
            return found
        held = {job.id: job for job in self.list_jobs()}
        if task_id in held:
            return held[task_id]
        position, name, path = self._find_queued(task_id, queue or self.queue)
        if position is None:
            # Taken off the queue and ended while the workers were asked (a second or more): the
            # backend has its state now. Without this look a job that failed at once read "unknown".
            found = self._stored_status(task_id)
            if found.state != "PENDING":
                return found
        # A RabbitMQ queue cannot be searched without taking its messages: PENDING is all we know.
        known = position is not None or not self._searchable
        return JobStatus(task_id, "PENDING", name=name, path=path, queue_position=position, known=known)

    def cancel(self, task_id: str, *, timeout: float = 10.0, queue: str | None = None) -> JobStatus:
        """Cancel a job: a queued one never runs, a running one is stopped; it ends REVOKED.

        A running job's child process is sent SIGTERM: billiard turns it into
        ``SystemExit`` once the decode of the current 30 s window returns, the
        child unloads its model and exits, and the pool forks a fresh one. The
        worker records REVOKED as it sends the signal. A job split into pieces
        across the fleet is marked REVOKED here: its queued pieces return at once
        and its running ones stop at their next progress report, in their
        children, which go on serving. A job that has ended is left as it is.
        Waits up to ``timeout`` s for REVOKED and returns the job's status then.

        Raises:
            BrokerUnavailableError: the broker or the result backend cannot be reached.
        """
        if not self._connected:
            self.check_connection()
        stored = self._stored_status(task_id)
        if stored.state in ENDED_STATES:
            return stored
        # Every worker remembers the id (and drops the job when it comes off the
        # queue, or out of a clip batch still gathering); the one running it kills
        # the child. Sent before asking the workers what they hold, which takes a while.
        if self._cancel_split(task_id):
            # No revoke for it: the merge, which carries the job's id, must still run and see
            # the mark (a worker told to revoke it would store REVOKED over the reason).
            return self._stored_status(task_id)
        self.app.control.revoke(task_id, terminate=True, signal="SIGTERM")
        before = self.status(task_id, queue=queue)
        if before.state in ENDED_STATES or not before.known:
            return before
        if before.state in ("PENDING", "RECEIVED", "RETRY"):
            # Not running: no worker stores anything until it takes the job (again).
            self.app.backend.mark_as_revoked(task_id, "revoked before it started")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._stored_status(task_id).state != "REVOKED":
            time.sleep(0.1)
        self._cancel_split(task_id)  # it may have been split into pieces as the signal went out
        return self._stored_status(task_id)

    def _cancel_split(self, task_id: str) -> bool:
        """Cancel a job that runs as pieces across the fleet; False if it does not (or no more)."""
        redis = self._backend_redis()
        if redis is None:
            return False
        return cancel.cancel_split(
            redis,
            task_id,
            ended=lambda: self._stored_status(task_id).state in ("SUCCESS", "FAILURE"),
            revoke=lambda: self.app.backend.mark_as_revoked(task_id, "cancelled while split into pieces"),
        )

    def _backend_redis(self) -> Any:
        """The result backend's redis-py client; None for a backend that is not Redis."""
        return getattr(self.app.backend, "client", None)

    def list_jobs(self, *, timeout: float = 1.0) -> list[JobStatus]:
        """The jobs the workers hold now: running (with their progress), received, scheduled.

        Asks every worker (``inspect active/reserved/scheduled``) and waits
        ``timeout`` s for the answers. Jobs still in the queue are not listed.
        """
        if not self._connected:
            self.check_connection()
        inspect = self.app.control.inspect(timeout=timeout)
        jobs: list[JobStatus] = []
        for worker, requests in sorted((inspect.active() or {}).items()):
            for request in map(_as_job, requests):
                stored = self._stored_status(request["id"])
                state = stored.state if stored.state in PENDING_STATES - {"PENDING"} else "STARTED"
                jobs.append(self._held(request, worker, state, stored.progress))
        for worker, requests in sorted((inspect.reserved() or {}).items()):
            jobs += [self._held(_as_job(request), worker, "RECEIVED") for request in requests]
        for worker, entries in sorted((inspect.scheduled() or {}).items()):
            jobs += [self._held(_as_job(entry.get("request", {})), worker, "SCHEDULED") for entry in entries]
        # A split job's pieces are shown as the job (its id, once per worker), never as ids
        # the user never saw.
        unique: dict[tuple[str, str | None], JobStatus] = {}
        for job in jobs:
            unique.setdefault((job.id, job.worker), job)
        return list(unique.values())

    @staticmethod
    def _held(
        request: dict[str, Any], worker: str, state: str, progress: dict[str, float] | None = None
    ) -> JobStatus:
        return JobStatus(
            str(request.get("id")),
            state,
            name=request.get("name"),
            path=first_arg(request.get("args")),
            worker=worker,
            progress=progress,
        )

    def _stored_status(self, task_id: str) -> JobStatus:
        meta = self.app.backend.get_task_meta(task_id, cache=False)
        state, info = meta.get("status", "PENDING"), meta.get("result")
        error = f"{type(info).__name__}: {info}" if isinstance(info, BaseException) else None
        worker = meta.get("worker")
        if worker is None and isinstance(info, dict):
            worker = info.get("hostname")  # STARTED stores {"pid", "hostname"}
        return JobStatus(
            task_id,
            state,
            name=meta.get("name"),
            path=first_arg(meta.get("args")),
            worker=worker,
            progress=info if state == "PROGRESS" and isinstance(info, dict) else None,
            error=error,
        )

    def _find_queued(self, task_id: str, queue: str) -> tuple[int | None, str | None, str | None]:
        """Position (1 = next), task name and path of a job still in a Redis queue."""
        needle = task_id.encode()
        with self.app.connection_for_read() as connection:
            channel = connection.default_channel
            client = getattr(channel, "client", None)
            if client is None:  # not a Redis broker: cannot look
                return None, None, None
            # kombu LPUSHes and workers BRPOP: the next job is the last element.
            # Priority levels live in separate lists, taken highest first.
            keys = [channel._q_for_pri(queue, pri) for pri in sorted(channel.priority_steps)]
            ahead = 0
            for key in keys:
                length = int(client.llen(key))
                for stop in range(length, 0, -1000):
                    chunk = client.lrange(key, max(0, stop - 1000), stop - 1)
                    for offset, raw in enumerate(reversed(chunk)):
                        if needle in raw:
                            message = json.loads(raw)
                            headers = message.get("headers", {})
                            if headers.get("id") == task_id:
                                position = ahead + (length - stop) + offset + 1
                                return position, headers.get("task"), message_path(message)
                ahead += length
        return None, None, None

    def close(self) -> None:
        """Release the broker and backend connections.

        Jobs dropped after this (their ``AsyncResult`` collected) no longer unsubscribe
        from the backend: Redis may be gone by then, as it is at the end of ``--local``.
        """
        consumer = getattr(self.app.backend, "result_consumer", None)
        pubsub = getattr(consumer, "_pubsub", None)
        if pubsub is not None:
            pubsub.close()
            consumer._pubsub = None  # type: ignore[union-attr]  # Celery starts it again if needed
        self.app.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _as_job(request: dict[str, Any]) -> dict[str, Any]:
    """A fanned-out job's piece (``asr.transcribe_piece``) as the job it belongs to."""
    job_id = (request.get("kwargs") or {}).get("job_id")
    if request.get("name") == PIECE_TASK_NAME and job_id:
        return request | {"id": job_id, "name": TASK_NAME}
    return request
