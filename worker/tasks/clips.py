"""Cross-job batching: a child decodes several waiting clip jobs as one batch.

A producer sends a short file as ``asr.transcribe_clip`` (``Client.submit(path,
batch=True)``, CLI ``--batch``) with the same arguments as ``asr.transcribe``.
The worker's main process holds such messages (celery-batches' ``Batches``) until
``ASR_CLIP_BATCH`` of them wait or ``ASR_CLIP_WAIT`` seconds pass, then hands the
lot to one child, which decodes the clips that fit one 30 s window and ask for
the same decoding as one batch of windows
(:func:`worker.pipeline.transcription.transcribe_clips`).

Each job stays a job of its own:

- its result (or its typed error) is stored under its own task id, with its own
  segment times, and a ``batch`` entry naming the batch and its size; its
  ``PROGRESS`` (0 %) is stored when the batch starts; Flower sees its own
  ``task-started`` and ``task-succeeded``/``task-failed`` events; a
  ``callback_url`` is posted as for ``asr.transcribe``;
- one bad file fails only its own job: the others are decoded without it;
- its transcript is the one ``asr.transcribe`` gives the file: a clip that the
  batched pass would read differently is decoded alone in the same child, and a
  clip longer than a window (or a job redelivered after its batch's child died)
  is handed over to ``asr.transcribe`` under the same id, with that task's
  delivery cap, time limits and retries;
- its message is acknowledged when the batch ends; if the child dies (or a time
  limit kills it), every message of the batch is returned to the queue.

A job revoked while it waits in the main process is dropped and marked
``REVOKED``. One cancelled once its batch has reached a child stays ``REVOKED``
(Celery stores that as the revoke arrives): the child stores nothing over it and
does not decode it alone, though a batch already decoding still decodes its clip.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from billiard.einfo import ExceptionInfo
from celery import Task, states
from celery.app.task import Context
from celery.exceptions import SoftTimeLimitExceeded
from celery.utils.nodenames import gethostname
from celery_batches import SimpleRequest
from kombu.utils.uuid import uuid

from asr_protocol.names import CLIP_TASK_NAME, TASK_NAME
from asr_protocol.queues import delivery_count
from asr_protocol.redact import masked, reprs
from worker.asr import get_model, get_model_config
from worker.celery import app
from worker.pipeline.audio import SAMPLE_RATE, check_duration, decode, probe_duration
from worker.pipeline.errors import ModelUnavailableError, TranscriptionTimeoutError, TransientError
from worker.pipeline.options import TranscribeOptions, parse_options
from worker.pipeline.progress import PROGRESS, progress_meta
from worker.pipeline.results import job_result, worker_facts
from worker.pipeline.settings import Settings, get_settings
from worker.pipeline.spool import open_audio
from worker.pipeline.transcription import (
    WINDOW_SECONDS,
    Transcript,
    check_model_supports,
    clip_batchable,
    transcribe_array,
    transcribe_clips,
)
from worker.runtime.delivery import check_delivery, uncount_delivery
from worker.tasks.clip_batches import ClipBatches
from worker.tasks.webhooks import queue_delivery, queue_revoked

__all__ = ["CLIP_TASK_NAME", "transcribe_clip"]

log = logging.getLogger(__name__)


@dataclass
class _Job:
    """One clip job of a batch and what the child learnt of it."""

    request: SimpleRequest
    started: float = field(default_factory=time.perf_counter)
    options: TranscribeOptions | None = None
    audio: np.ndarray | None = None
    decode_seconds: float = 0.0
    deliveries: int = 1
    #: This start was counted against the job's delivery cap.
    counted: bool = False
    #: Its outcome is stored (or it was handed over).
    ended: bool = False

    @property
    def id(self) -> str:
        return str(self.request.id)

    @property
    def context(self) -> Context:
        """What the result backend stores about the job (its name, args and queue)."""
        r = self.request
        return Context(
            id=r.id,
            task=r.name,
            args=masked(r.args),  # a URL's signature is not stored (worker.runtime.privacy)
            kwargs=r.kwargs,
            hostname=r.hostname,
            delivery_info=r.delivery_info,
            retries=self.retries,
        )

    @property
    def retries(self) -> int:
        return int((self.request.request_dict or {}).get("retries", 0))

    @property
    def audio_path(self) -> Any:
        return self.request.args[0] if self.request.args else None


@dataclass
class _BatchRun:
    """What every step of one clip batch needs, gathered: the task, the settings, Flower's events."""

    task: Task
    settings: Settings
    #: Sends one job's task event (``task-started``, ``task-succeeded`` ...) as if it ran alone.
    send: Callable[..., None]
    #: The loaded model's device, compute type and languages, once the batch reaches the model.
    config: dict[str, Any] = field(default_factory=dict)


@app.task(name=CLIP_TASK_NAME, base=ClipBatches, bind=True)
def transcribe_clip(self: Task, requests: list[SimpleRequest]) -> None:
    """Transcribe a batch of clip jobs; each job's outcome is stored under its own id."""
    settings = get_settings()
    hostname = requests[0].hostname if requests else gethostname()
    with _events(hostname) as send:
        run = _BatchRun(self, settings, send)
        jobs = []
        for request in requests:
            job = _Job(request)
            if _already_done(run, job):
                continue
            send("task-started", uuid=job.id)
            try:
                if _prepare(run, job):
                    jobs.append(job)
            except TransientError as exc:
                _hand_over(job, f"{type(exc).__name__}, retried there")
            except Exception as exc:
                _fail(run, job, exc)
        try:
            _transcribe(run, jobs)
        except SoftTimeLimitExceeded:
            limit = self.app.conf.task_soft_time_limit
            for job in jobs:
                if not job.ended:
                    error = TranscriptionTimeoutError(
                        f"clip batch ran past the soft time limit of {limit} s (ASR_SOFT_TIME_LIMIT)"
                    )
                    _fail(run, job, error)


def _already_done(run: _BatchRun, job: _Job) -> bool:
    """A job whose batch's child died after storing its result is not run again, nor a cancelled one."""
    state = _stored_state(run, job)
    if state == states.REVOKED:
        _end_cancelled(run, job)
        return True
    if state != states.SUCCESS:
        return False
    log.info("clip job %s already succeeded; not run again", job.id)
    return True


def _cancelled(run: _BatchRun, job: _Job) -> bool:
    """True (and the job ended) if the job was cancelled since its batch reached this child."""
    if _stored_state(run, job) != states.REVOKED:
        return False
    _end_cancelled(run, job)
    return True


def _stored_state(run: _BatchRun, job: _Job) -> str | None:
    return run.task.backend.get_task_meta(job.id, cache=False).get("status")


def _end_cancelled(run: _BatchRun, job: _Job) -> None:
    """A cancelled job: Celery stored its REVOKED; nothing is stored over it."""
    log.info("clip job %s cancelled; nothing stored for it", job.id)
    job.ended = True
    run.send("task-revoked", uuid=job.id, terminated=False, signum=None, expired=False)
    queue_revoked(job.id, job.request.kwargs, job.request.delivery_info, "revoked")


def _prepare(run: _BatchRun, job: _Job) -> bool:
    """Check and decode a job's clip; False when it was handed over to ``asr.transcribe``.

    Raises the job's typed error (bad options, missing or bad file, disabled model).
    """
    settings = run.settings
    if not settings.enable_faster_whisper:
        raise ModelUnavailableError("ASR is disabled on this worker (ENABLE_FASTER_WHISPER=false)")
    job.options = parse_options(
        dict(job.request.kwargs or {}),
        webhook_hosts=settings.webhook_allowed_hosts,
        output_prefixes=settings.output_prefixes,
    )
    if job.options.diarize:  # speaker labels are asr.transcribe's (worker.pipeline.diarize_job)
        return _hand_over(job, "asks for speaker labels")
    with open_audio(job.audio_path, settings) as path:
        return _prepare_file(run, job, path)


def _prepare_file(run: _BatchRun, job: _Job, path: Path) -> bool:
    """:func:`_prepare` once the job's audio is a local file (a path, or a URL's spooled copy)."""
    task, settings = run.task, run.settings
    seconds = probe_duration(path)
    check_duration(seconds, path, settings)
    if seconds is not None and seconds > WINDOW_SECONDS + 1:
        return _hand_over(job, "longer than one window")
    # A job back after its batch's child died may hold the file that killed it: alone,
    # under asr.transcribe's delivery cap, it cannot take other jobs down again.
    job.deliveries = check_delivery(
        task.backend, job.id, job.retries, settings.max_deliveries, broker_count=delivery_count(job.request)
    )
    job.counted = True
    if job.deliveries > 1:
        return _hand_over(job, f"delivery {job.deliveries}")
    decode_started = time.perf_counter()
    job.audio = decode(path)
    job.decode_seconds = time.perf_counter() - decode_started
    check_duration(len(job.audio) / SAMPLE_RATE, path, settings)
    if len(job.audio) / SAMPLE_RATE > WINDOW_SECONDS:
        return _hand_over(job, "longer than one window")
    task.backend.store_result(
        job.id, progress_meta(0.0, len(job.audio) / SAMPLE_RATE), PROGRESS, request=job.context
    )
    return True


def _hand_over(job: _Job, why: str) -> bool:
    """Send the job to ``asr.transcribe`` under its own id, on its own queue."""
    queue = (job.request.delivery_info or {}).get("routing_key") or None
    log.info("clip job %s handed over to asr.transcribe (%s)", job.id, why)
    if job.counted:  # asr.transcribe counts its own start; this one decoded nothing
        uncount_delivery(app.backend, job.id, job.retries)
    job.ended = True
    app.send_task(
        TASK_NAME,
        args=job.request.args,
        kwargs=job.request.kwargs,
        task_id=job.id,
        queue=queue,
        **reprs(job.request.args, job.request.kwargs),
    )
    return False


def _transcribe(run: _BatchRun, jobs: list[_Job]) -> None:
    """Decode the prepared jobs: batchable ones with equal options as one batch each."""
    if not jobs:
        return
    model = get_model()
    if model is None:
        for job in jobs:
            _fail(run, job, ModelUnavailableError("ASR is disabled on this worker"))
        return
    run.config = get_model_config()
    settings = run.settings
    groups, alone = _grouped(run, jobs)
    batch_id = uuid()
    for group in groups.values():
        if len(group) == 1:
            alone += group
            continue
        first = group[0].options
        assert first is not None
        try:
            transcripts: list[Transcript | None] = transcribe_clips(
                model,
                [job.audio for job in group if job.audio is not None],
                first,
                default_beam_size=settings.beam_size,
                batch_size=settings.clip_batch,
            )
        except SoftTimeLimitExceeded:
            raise
        except Exception:
            log.exception("clip batch %s failed; its %d jobs are decoded one by one", batch_id, len(group))
            transcripts = [None] * len(group)
        batch = {"id": batch_id, "size": len(group)}
        for job, transcript in zip(group, transcripts, strict=True):
            if transcript is None:
                alone.append(job)
            else:
                _succeed(run, job, transcript, batch=batch)
    for job in alone:
        if _cancelled(run, job):
            continue
        try:
            assert job.options is not None and job.audio is not None
            transcript = transcribe_array(model, job.audio, job.options, **settings.decoding())
        except SoftTimeLimitExceeded:
            raise
        except Exception as exc:
            _fail(run, job, exc)
        else:
            _succeed(run, job, transcript)


def _grouped(run: _BatchRun, jobs: list[_Job]) -> tuple[dict[str, list[_Job]], list[_Job]]:
    """The jobs that can share a batch, by their decoding options, and those decoded alone.

    A job the model cannot serve (a language on an English-only model) fails here.
    """
    groups: dict[str, list[_Job]] = {}
    alone: list[_Job] = []
    settings, config = run.settings, run.config
    for job in jobs:
        assert job.options is not None and job.audio is not None
        try:
            check_model_supports(job.options, config["multilingual"], settings.model_id)
        except Exception as exc:
            _fail(run, job, exc)
            continue
        if clip_batchable(len(job.audio) / SAMPLE_RATE, job.options, config["multilingual"]):
            key = json.dumps(job.options.to_kwargs(settings.beam_size), sort_keys=True)
            groups.setdefault(key, []).append(job)
        else:
            alone.append(job)
    return groups, alone


def _succeed(
    run: _BatchRun, job: _Job, transcript: Transcript, batch: dict[str, object] | None = None
) -> None:
    assert job.options is not None
    if _cancelled(run, job):
        return
    total = time.perf_counter() - job.started
    result = job_result(
        job.audio_path,
        transcript,
        job.options,
        settings=run.settings,
        model_config=run.config,
        timings={"decode": job.decode_seconds, "transcribe": transcript.seconds, "total": total},
        worker=worker_facts(job.request.hostname),
        deliveries=job.deliveries,
        batch=batch,
    )
    run.task.backend.mark_as_done(job.id, result, request=job.context)
    job.ended = True
    run.send("task-succeeded", uuid=job.id, result=f"{transcript.text[:200]!r}", runtime=total)
    queue_delivery(job.id, job.request.kwargs, job.request.delivery_info, "SUCCESS", None)


def _fail(run: _BatchRun, job: _Job, exc: BaseException) -> None:
    """Store the job's own error; the rest of the batch goes on."""
    if _cancelled(run, job):
        return
    log.warning("clip job %s failed: %s: %s", job.id, type(exc).__name__, exc)
    traceback = ExceptionInfo((type(exc), exc, exc.__traceback__)).traceback
    run.task.backend.mark_as_failure(job.id, exc, traceback=traceback, request=job.context)
    job.ended = True
    run.send("task-failed", uuid=job.id, exception=f"{type(exc).__name__}({str(exc)!r})", traceback=traceback)
    error = {"type": type(exc).__name__, "message": str(exc)}
    queue_delivery(job.id, job.request.kwargs, job.request.delivery_info, "FAILURE", error)


@contextmanager
def _events(hostname: str) -> Iterator[Any]:
    """Send Flower's per-job task events as if each job had run on its own."""
    if not app.conf.worker_send_task_events:
        yield lambda *_, **__: None
        return
    with app.events.default_dispatcher(hostname=hostname) as dispatcher:

        def send(kind: str, **fields: Any) -> None:
            try:
                dispatcher.send(kind, **fields)
            except Exception:
                log.exception("could not send the %s event", kind)

        yield send
