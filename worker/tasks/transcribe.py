"""The ``asr.transcribe`` task: a path in, a JSON transcript out."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from celery import Task

from asr_protocol.names import TASK_NAME
from asr_protocol.records import JobResult
from worker.celery import app
from worker.pipeline.audio import SAMPLE_RATE, check_duration, decode_tracks
from worker.pipeline.diarize_job import (
    check_diarization,
    decoding_options,
    label_transcript,
    load_known,
    start_diarization,
)
from worker.pipeline.options import TranscribeOptions
from worker.pipeline.plan import FANOUT, plan_job
from worker.pipeline.progress import PROGRESS, ProgressReporter, progress_meta
from worker.pipeline.results import job_result, worker_facts
from worker.pipeline.settings import Settings
from worker.pipeline.transcription import Transcript, transcribe_array, transcribe_channels
from worker.tasks import fanout
from worker.tasks.base import AudioTask

if TYPE_CHECKING:
    from worker.pipeline.known_speakers import Reference

__all__ = ["transcribe"]


def _publisher(task: Task) -> Callable[[float, float, str], None] | None:
    """Store the job's progress, and the text heard so far, under its own id (none without one)."""
    if not task.request.id:
        return None

    def publish(done: float, total: float, heard: str) -> None:
        meta = progress_meta(done, total, **({"text": heard} if heard else {}))
        task.update_state(state=PROGRESS, meta=meta)

    return publish


@app.task(name=TASK_NAME, base=AudioTask, bind=True)
def transcribe(self: AudioTask, audio_path: Any, **options: Any) -> JobResult:
    """Transcribe the audio at ``audio_path``: a path on storage the worker sees, or a URL
    (``s3://``, ``https://``) under ``ASR_AUDIO_URLS``, spooled while the job runs.

    Options: ``language``, ``task``, ``beam_size``, ``vad_filter``,
    ``word_timestamps``, ``initial_prompt``, ``hotwords``, ``temperature``,
    ``channels`` (per-channel transcripts of a stereo file), ``callback_url``
    (a webhook, see ``worker.tasks.webhooks``), ``fanout_seconds`` (split longer
    audio across the fleet, see ``worker.tasks.fanout``), ``output_url`` and
    ``output_formats`` (write the transcript there too, see ``worker.pipeline.outputs``),
    ``diarize`` with ``num_speakers``, ``min_speakers``, ``max_speakers`` and ``known_speakers``
    (speaker labels, names for known voices, see ``worker.pipeline.diarize_job``).
    """
    started_at, started = time.time(), time.perf_counter()
    with self.job() as job:
        opts = job.options(options)
        check_diarization(opts, job.settings)
        known = load_known(opts, job.settings)  # bad references fail the job before decoding
        path = job.audio_path(audio_path)
        decode_started = time.perf_counter()
        tracks, labels = decode_tracks(path, opts.channels)
        decode_seconds = time.perf_counter() - decode_started
        check_duration(len(tracks[0]) / SAMPLE_RATE, path, job.settings)
        model, config = job.model(opts)
        settings = job.settings
        plan = plan_job(
            len(tracks[0]) / SAMPLE_RATE,
            opts,
            fanout_seconds=settings.fanout_seconds,
            chunk_seconds=settings.chunk_seconds,
            batch_size=settings.batch_size,
            can_split=bool(self.request.id),
        )
        if plan.route == FANOUT:
            return fanout.fan_out(
                self,
                audio_path,
                options,
                tracks[0],
                plan.piece_seconds,
                model=model,
                multilingual=config["multilingual"],
                job={"started_at": started_at, "decode": decode_seconds, "deliveries": job.deliveries},
            )
        done = _transcribe_here(self, settings, opts, model, tracks, labels, known)
        timings = {"decode": decode_seconds, **done.timings, "total": time.perf_counter() - started}
        return job_result(
            audio_path,
            done.transcript,
            opts,
            settings=settings,
            model_config=config,
            timings=timings,
            worker=worker_facts(self.request.hostname),
            deliveries=job.deliveries,
            channels=done.channels,
            speakers=done.speakers,
        )


@dataclass(frozen=True)
class _Done:
    """A job transcribed in this child: its transcript, step timings, channels and speakers."""

    transcript: Transcript
    timings: dict[str, float]
    channels: list[dict[str, object]] | None
    speakers: list[dict[str, object]] | None


def _transcribe_here(
    task: AudioTask,
    settings: Settings,
    opts: TranscribeOptions,
    model: Any,
    tracks: list[np.ndarray],
    labels: list[Any],
    known: dict[str, Reference],
) -> _Done:
    """Decode the job's tracks in this child (per channel when there are several), label speakers."""
    # Every channel is decoded in turn: the deadline and the progress cover their sum.
    seconds = sum(len(track) for track in tracks) / SAMPLE_RATE
    report = ProgressReporter(_publisher(task), settings.deadline_for(seconds))
    report(0.0, seconds, force=True)
    channels, speakers = None, None
    decoding = decoding_options(opts)  # a diarized job needs word timings
    # The speakers are found while the decoder reads (a per-channel job's channels are its speakers).
    found = start_diarization(tracks[0]) if opts.diarize and not labels else None
    if labels:
        transcript, channels = transcribe_channels(
            model, tracks, labels, decoding, on_progress=report, **settings.decoding()
        )
    else:
        transcript = transcribe_array(model, tracks[0], decoding, on_progress=report, **settings.decoding())
    timings = {"transcribe": transcript.seconds}
    if opts.diarize:
        transcript, labelled = label_transcript(
            tracks[0], transcript, opts, channels=labels or (), known=known, found=found
        )
        speakers, timings["diarize"] = labelled["speakers"], labelled["diarize_seconds"]
    return _Done(transcript, timings, channels, speakers)
