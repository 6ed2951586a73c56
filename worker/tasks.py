"""The ``asr.transcribe`` task: a path in, a JSON transcript out."""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from worker.asr import get_model, get_model_config
from worker.audio import SAMPLE_RATE, check_audio_path, check_duration, decode_tracks, probe_duration
from worker.celery import AUDIO_TASK_OPTIONS, app
from worker.delivery import check_delivery
from worker.errors import (
    ModelUnavailableError,
    TranscriptionTimeoutError,
    TransientError,
)
from worker.options import parse_options
from worker.settings import get_settings
from worker.transcription import (
    check_model_supports,
    transcribe_array,
    transcribe_channels,
)

__all__ = ["transcribe"]

PROGRESS = "PROGRESS"
#: At most one progress write to the result backend per this many seconds.
PROGRESS_INTERVAL = 0.5


class _ProgressReporter:
    """Publishes the ``PROGRESS`` state (throttled) and enforces the job's deadline."""

    def __init__(self, task: Task, deadline: float | None) -> None:
        self._task = task
        self._last = 0.0
        self._started = time.monotonic()
        self._deadline = deadline

    def __call__(self, done: float, total: float, *, force: bool = False) -> None:
        now = time.monotonic()
        if self._deadline is not None and now - self._started > self._deadline:
            raise TranscriptionTimeoutError(
                f"job ran past its deadline of {self._deadline:.0f} s for {total:.0f} s of audio "
                "(ASR_TIMEOUT_BASE + ASR_TIMEOUT_PER_AUDIO_SECOND x duration)"
            )
        if not self._task.request.id or (not force and now - self._last < PROGRESS_INTERVAL):
            return
        self._last = now
        percent = round(100.0 * done / total, 1) if total > 0 else 100.0
        self._task.update_state(
            state=PROGRESS,
            meta={"seconds_done": round(done, 2), "seconds_total": round(total, 2), "percent": percent},
        )


@app.task(name="asr.transcribe", **AUDIO_TASK_OPTIONS)
def transcribe(self: Task, audio_path: Any, **options: Any) -> dict[str, Any]:
    """Transcribe the audio file at ``audio_path`` (a path on storage the worker sees).

    Options: ``language``, ``task``, ``beam_size``, ``vad_filter``,
    ``word_timestamps``, ``initial_prompt``, ``hotwords``, ``temperature``,
    ``channels`` (per-channel transcripts of a stereo file) and ``callback_url``
    (a webhook, see ``worker.webhooks``).
    """
    try:
        return _transcribe(self, audio_path, options)
    except SoftTimeLimitExceeded:
        limit = (self.request.timelimit or (None, None))[1] or app.conf.task_soft_time_limit
        raise TranscriptionTimeoutError(
            f"job ran past the soft time limit of {limit} s (ASR_SOFT_TIME_LIMIT)"
        ) from None
    except RuntimeError as exc:
        # CTranslate2 reports CUDA out-of-memory as a RuntimeError; a retry may
        # land on a freer GPU or a CPU worker.
        if "out of memory" in str(exc).lower():
            raise TransientError(f"out of memory while transcribing: {exc}") from None
        raise


def _transcribe(self: Task, audio_path: Any, options: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    settings = get_settings()
    deliveries = check_delivery(self.backend, self.request.id, self.request.retries, settings.max_deliveries)
    if not settings.enable_faster_whisper:
        raise ModelUnavailableError("ASR is disabled on this worker (ENABLE_FASTER_WHISPER=false)")
    opts = parse_options(options, webhook_hosts=settings.webhook_allowed_hosts)
    path = check_audio_path(audio_path, settings)
    check_duration(probe_duration(path), path, settings)

    decode_started = time.perf_counter()
    tracks, labels = decode_tracks(path, opts.channels)
    decode_seconds = time.perf_counter() - decode_started
    check_duration(len(tracks[0]) / SAMPLE_RATE, path, settings)

    model = get_model()
    if model is None:  # disabled between the check above and now: cannot happen, but be clear
        raise ModelUnavailableError("ASR is disabled on this worker")
    config = get_model_config()
    check_model_supports(opts, config["multilingual"], settings.model_id)

    # Every channel is decoded in turn: the deadline and the progress cover their sum.
    seconds = sum(len(track) for track in tracks) / SAMPLE_RATE
    report = _ProgressReporter(self, settings.deadline_for(seconds))
    report(0.0, seconds, force=True)
    extra: dict[str, Any] = {}
    if labels:
        transcript, extra["channels"] = transcribe_channels(
            model,
            tracks,
            labels,
            opts,
            default_beam_size=settings.beam_size,
            on_progress=report,
            chunk_seconds=settings.chunk_seconds,
        )
    else:
        transcript = transcribe_array(
            model,
            tracks[0],
            opts,
            default_beam_size=settings.beam_size,
            on_progress=report,
            chunk_seconds=settings.chunk_seconds,
        )
    return {
        "audio_path": str(audio_path),
        "text": transcript.text,
        "language": transcript.language,
        "language_probability": transcript.language_probability,
        "duration": transcript.duration,
        "segments": transcript.segments,
        "options": opts.to_kwargs(settings.beam_size),
        "model": settings.model_id,
        "device": config["device"],
        "compute_type": config["compute_type"],
        "timings": {
            "decode": round(decode_seconds, 3),
            "transcribe": round(transcript.seconds, 3),
            "total": round(time.perf_counter() - started, 3),
        },
        "worker": {"hostname": self.request.hostname, "pid": os.getpid()},
        "deliveries": deliveries,
        **extra,
    }
