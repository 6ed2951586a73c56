"""The JSON result of a transcription job, the same whether one child or the fleet made it."""

from __future__ import annotations

import os
from typing import Any

from asr_protocol.records import JobResult, PieceSummary, WorkerFacts
from worker.pipeline.options import TranscribeOptions
from worker.pipeline.settings import Settings
from worker.pipeline.transcription import Transcript
from worker.pipeline.urls import mask_url

__all__ = ["job_result", "worker_facts"]


def worker_facts(hostname: str | None) -> WorkerFacts:
    """Which worker process did the work."""
    return {"hostname": hostname, "pid": os.getpid()}


def job_result(
    audio_path: Any,
    transcript: Transcript,
    options: TranscribeOptions,
    *,
    settings: Settings,
    model_config: dict[str, Any],
    timings: dict[str, float],
    worker: WorkerFacts,
    deliveries: int,
    channels: list[dict[str, object]] | None = None,
    pieces: list[PieceSummary] | None = None,
    batch: dict[str, object] | None = None,
    speakers: list[dict[str, object]] | None = None,
) -> JobResult:
    """What ``asr.transcribe`` stores in the result backend (README "The task and its result").

    With an ``output_url`` (or ``ASR_OUTPUT_URL``) the transcript is also written there
    (:mod:`worker.pipeline.outputs`) and ``outputs`` lists ``{format: url}``.
    """
    result: JobResult = {
        # A URL's query string (a presigned URL's signature) is never stored.
        "audio_path": mask_url(audio_path) if "://" in str(audio_path) else str(audio_path),
        "text": transcript.text,
        "language": transcript.language,
        "language_probability": transcript.language_probability,
        "duration": transcript.duration,
        "segments": transcript.segments,
        # Speech with no words even when decoded again (worker.pipeline.decoding): empty when none was lost.
        "gaps": transcript.gaps,
        "options": options.to_kwargs(settings.beam_size),
        "model": settings.model_id,
        "device": model_config["device"],
        "compute_type": model_config["compute_type"],
        "decoder": transcript.decoder,
        "timings": {name: round(value, 3) for name, value in timings.items()},
        "worker": worker,
        "deliveries": deliveries,
    }
    if channels is not None:
        result["channels"] = channels
    if pieces is not None:
        result["pieces"] = pieces
    if batch is not None:
        result["batch"] = batch
    if speakers is not None:
        result["speakers"] = speakers
    target = options.output_url or settings.output_url
    if target:
        from worker.pipeline.outputs import write_outputs

        result["outputs"] = write_outputs(result, target, options.output_formats or ("json",), settings)
    return result
