"""What every task that reads audio does, written once: :class:`AudioTask`.

A task body opens ``with self.job() as job:``. Inside it, the job has been counted
as a delivery (and refused past ``ASR_MAX_DELIVERIES``; a start again of a job whose
result is already SUCCESS is acknowledged and skipped), the worker is known to
serve ASR, and ``job`` checks the path, the duration, the options and the model
the same way for every task. Errors raised inside become the project's typed
errors (soft time limit, out of memory) before Celery's retry policy sees them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Task, states
from celery.exceptions import Ignore, SoftTimeLimitExceeded

from asr_protocol.queues import delivery_count
from asr_protocol.redact import reprs
from worker.asr import get_model, get_model_config
from worker.pipeline.audio import check_duration, probe_duration
from worker.pipeline.errors import (
    InputError,
    ModelUnavailableError,
    RedeliveryLimitError,
    TranscriptionTimeoutError,
    TransientError,
)
from worker.pipeline.options import TranscribeOptions, parse_options
from worker.pipeline.settings import Settings, get_settings
from worker.pipeline.spool import open_audio
from worker.pipeline.transcription import check_model_supports
from worker.runtime.delivery import check_delivery, dead_letter
from worker.runtime.privacy import sent_args

__all__ = ["AudioTask", "Job"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One run of a job: the worker's settings and the steps every audio task takes."""

    settings: Settings
    #: How many times this job has started (1 the first time).
    deliveries: int
    #: What the job holds until it ends: a URL's spooled download.
    holds: ExitStack = field(default_factory=ExitStack)

    def options(self, raw: dict[str, Any], *, job_only: bool = True) -> TranscribeOptions:
        """The job's options, checked (``job_only``: webhook and outputs allowed, as for a whole job)."""
        if not job_only:
            return parse_options(raw)
        return parse_options(
            raw,
            webhook_hosts=self.settings.webhook_allowed_hosts,
            output_prefixes=self.settings.output_prefixes,
        )

    def audio_path(self, audio_path: Any, *, probe: bool = True) -> Path:
        """The local file of the job's audio (a checked path, or a URL's download, held until
        the job ends), and (``probe``) its duration within the limit."""
        path = self.holds.enter_context(open_audio(audio_path, self.settings))
        if probe:
            check_duration(probe_duration(path), path, self.settings)
        return path

    def model(self, options: TranscribeOptions | None = None) -> tuple[Any, dict[str, Any]]:
        """This child's model and its facts; refuses ``options`` the model cannot honour."""
        model = get_model()
        if model is None:
            raise ModelUnavailableError("ASR is disabled on this worker (ENABLE_FASTER_WHISPER=false)")
        config = get_model_config()
        if options is not None:
            check_model_supports(options, config["multilingual"], self.settings.model_id)
        return model, config


class AudioTask(Task):
    """The base of every task that reads an audio file."""

    # Bad input is expected in normal operation: logged without a traceback.
    throws = (InputError,)
    # Only errors a retry can fix are retried; bad input fails at once.
    autoretry_for = (TransientError,)
    retry_backoff = True
    retry_backoff_max = 300
    retry_jitter = True
    max_retries = 5
    # A URL's signature is not stored with the job's states (worker.runtime.privacy).
    masks_url_args = True

    def retry(self, args: Any = None, kwargs: Any = None, *rest: Any, **options: Any) -> Any:
        """Celery's retry, sent with the real arguments (the request's are masked) and masked reprs."""
        args = sent_args(self.request) if args is None else args
        shown = reprs(args, self.request.kwargs if kwargs is None else kwargs)
        return super().retry(args, kwargs, *rest, **(shown | options))

    @contextmanager
    def job(self) -> Iterator[Job]:
        """Count the delivery, check the worker serves ASR, and map errors; yields the :class:`Job`."""
        with self.typed_errors():
            settings = get_settings()
            broker_count = delivery_count(self.request)
            try:
                deliveries = check_delivery(
                    self.backend,
                    self.request.id,
                    self.request.retries,
                    settings.max_deliveries,
                    broker_count=broker_count,
                )
            except RedeliveryLimitError as exc:
                if broker_count is not None:  # RabbitMQ: the job goes to its dead-letter queue
                    dead_letter(self, exc)
                raise
            if deliveries > 1 and self.AsyncResult(self.request.id).state == states.SUCCESS:
                # A start of a job that already succeeded (its ack was lost with the broker
                # connection): acknowledged, its stored result kept, not run again. Celery's
                # worker_deduplicate_successful_tasks catches only messages marked redelivered.
                log.warning("job %s already succeeded: not run again", self.request.id)
                raise Ignore()
            if not settings.enable_faster_whisper:
                raise ModelUnavailableError("ASR is disabled on this worker (ENABLE_FASTER_WHISPER=false)")
            with ExitStack() as holds:
                yield Job(settings, deliveries, holds)

    @contextmanager
    def typed_errors(self) -> Iterator[None]:
        """Turn the soft time limit and out-of-memory into the project's typed errors."""
        try:
            yield
        except SoftTimeLimitExceeded:
            limit = (self.request.timelimit or (None, None))[1] or self.app.conf.task_soft_time_limit
            raise TranscriptionTimeoutError(
                f"job ran past the soft time limit of {limit} s (ASR_SOFT_TIME_LIMIT)"
            ) from None
        except Exception as exc:
            stop = stopped_by(exc)
            if stop is not None:
                raise stop from None
            # CTranslate2 reports CUDA out-of-memory as a RuntimeError; a retry may
            # land on a freer GPU or a CPU worker.
            if isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower():
                raise TransientError(f"out of memory while transcribing: {exc}") from None
            raise


def stopped_by(exc: BaseException) -> BaseException | None:
    """The SystemExit or KeyboardInterrupt in ``exc``'s causes, if any: the child is being stopped.

    billiard stops a child past the hard time limit with SIGTERM (SIGKILL 0.1 s later), and its
    handler raises SystemExit wherever the child is. Code that catches it on the way turns it into
    an ordinary error: an import it interrupts fails (onnxruntime's, the first VAD use, became
    ImportError, then faster-whisper's RuntimeError), and that error, stored as the job's failure,
    replaced the TimeLimitExceeded the pool had stored. Raised again, the stop is not a result.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, (SystemExit, KeyboardInterrupt)):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
