"""The ``asr.transcribe`` task: a path in, a JSON transcript out."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from celery import Task

from worker import fanout
from worker.asr import get_model, get_model_config
from worker.audio import SAMPLE_RATE, check_audio_path, check_duration, decode_tracks, probe_duration
from worker.celery import AUDIO_TASK_OPTIONS, app, audio_task_errors
from worker.delivery import check_delivery
from worker.diarize_job import check_diarization, decoding_options, label_transcript
from worker.errors import ModelUnavailableError
from worker.options import parse_options
from worker.progress import PROGRESS, ProgressReporter, progress_meta
from worker.results import job_result, worker_facts
from worker.settings import get_settings
from worker.transcription import check_model_supports, transcribe_array, transcribe_channels

__all__ = ["transcribe"]


def _publisher(task: Task) -> Callable[[float, float], None] | None:
    """Store the job's progress under its own id (none when called directly, without one)."""
    if not task.request.id:
        return None
    return lambda done, total: task.update_state(state=PROGRESS, meta=progress_meta(done, total))


@app.task(name="asr.transcribe", **AUDIO_TASK_OPTIONS)
def transcribe(self: Task, audio_path: Any, **options: Any) -> dict[str, Any]:
    """Transcribe the audio file at ``audio_path`` (a path on storage the worker sees).

    Options: ``language``, ``task``, ``beam_size``, ``vad_filter``,
    ``word_timestamps``, ``initial_prompt``, ``hotwords``, ``temperature``,
    ``channels`` (per-channel transcripts of a stereo file), ``callback_url``
    (a webhook, see ``worker.webhooks``), ``fanout_seconds`` (split longer
    audio across the fleet, see ``worker.fanout``) and ``diarize`` with ``num_speakers``,
    ``min_speakers``, ``max_speakers`` (speaker labels, see ``worker.diarize_job``).
    """
    with audio_task_errors(self):
        return _transcribe(self, audio_path, options)


def _transcribe(self: Task, audio_path: Any, options: dict[str, Any]) -> dict[str, Any]:
    started_at = time.time()
    started = time.perf_counter()
    settings = get_settings()
    deliveries = check_delivery(self.backend, self.request.id, self.request.retries, settings.max_deliveries)
    if not settings.enable_faster_whisper:
        raise ModelUnavailableError("ASR is disabled on this worker (ENABLE_FASTER_WHISPER=false)")
    opts = parse_options(options, webhook_hosts=settings.webhook_allowed_hosts)
    check_diarization(opts, settings)
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
    piece_seconds = fanout.piece_length(seconds, opts, settings, has_channels=bool(labels))
    if piece_seconds and self.request.id:
        return fanout.fan_out(
            self,
            audio_path,
            options,
            tracks[0],
            piece_seconds,
            model=model,
            multilingual=config["multilingual"],
            job={"started_at": started_at, "decode": decode_seconds, "deliveries": deliveries},
        )
    report = ProgressReporter(_publisher(self), settings.deadline_for(seconds))
    report(0.0, seconds, force=True)
    extra: dict[str, Any] = {}
    if labels:
        transcript, extra["channels"] = transcribe_channels(
            model,
            tracks,
            labels,
            decoding_options(opts),
            on_progress=report,
            **settings.decoding(),
        )
    else:
        transcript = transcribe_array(
            model,
            tracks[0],
            decoding_options(opts),
            on_progress=report,
            **settings.decoding(),
        )
    timings = {"decode": decode_seconds, "transcribe": transcript.seconds}
    if opts.diarize:
        transcript, speakers = label_transcript(tracks[0], transcript, opts, channels=labels or ())
        extra["speakers"] = speakers["speakers"]
        timings["diarize"] = speakers["diarize_seconds"]
    timings |= {"total": time.perf_counter() - started}
    return job_result(
        audio_path,
        transcript,
        opts,
        settings=settings,
        model_config=config,
        timings=timings,
        worker=worker_facts(self.request.hostname),
        deliveries=deliveries,
        **extra,
    )
