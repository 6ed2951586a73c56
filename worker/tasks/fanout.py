"""Long files across the fleet: pieces cut in pauses, run as a Celery chord, one merged result.

A job whose audio is longer than its fan-out length (option ``fanout_seconds``,
default ``ASR_FANOUT_SECONDS``) is not transcribed by the child that took it.
That child cuts the decoded audio at the quietest moments near each limit
(:func:`worker.pipeline.speech.split_points`) into pieces of at most that length
and replaces itself (``Task.replace``) with a chord on the job's queue: one
``asr.transcribe_piece`` per piece, which any free child of any worker may take
(each decodes only its own stretch of the file), and ``asr.merge_pieces``, which
inherits the job's id, so the merged result lands where the producer waits.

Pieces add their progress to one Redis hash per job and publish the sum as the
job's ``PROGRESS`` state. A piece that meets bad input returns the error as data,
and the merge raises it as the job's own typed error. Cancelling a split job:
:mod:`asr_protocol.cancel` (both halves of the protocol).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from celery import Signature, Task, chord, states
from celery.exceptions import Ignore
from redis import exceptions as redis_errors

from asr_protocol import cancel
from asr_protocol.names import MERGE_TASK_NAME, PIECE_TASK_NAME
from asr_protocol.records import JobResult, PieceRecord, PieceSummary, WorkerFacts
from asr_protocol.redact import reprs
from worker.celery import app
from worker.pipeline import errors
from worker.pipeline.audio import SAMPLE_RATE, decode_range
from worker.pipeline.diarize_job import (
    check_diarization,
    decoding_options,
    load_known,
    merge_speakers,
    start_piece_windows,
    with_piece_decoded,
)
from worker.pipeline.errors import ASRError, InputError, TransientError
from worker.pipeline.options import WHOLE_JOB_OPTIONS, parse_options
from worker.pipeline.plan import BATCHED, SEQUENTIAL
from worker.pipeline.progress import PROGRESS, ProgressReporter, progress_meta
from worker.pipeline.results import job_result, worker_facts
from worker.pipeline.segments import join_text, shifted
from worker.pipeline.settings import Settings, get_settings
from worker.pipeline.speech import split_points
from worker.pipeline.spool import discard, retain
from worker.pipeline.transcription import Transcript, transcribe_array
from worker.runtime.connections import backend_client, riding_out
from worker.tasks.base import AudioTask
from worker.tasks.webhooks import queue_revoked

__all__ = ["fan_out", "merge_pieces", "transcribe_piece"]

log = logging.getLogger(__name__)


def fan_out(
    task: Task,
    audio_path: Any,
    raw_options: dict[str, Any],
    audio: np.ndarray,
    piece_seconds: float,
    *,
    model: Any,
    multilingual: bool,
    job: dict[str, Any],
) -> Any:
    """Replace ``task`` by a chord over the pieces of ``audio``; never returns in a worker.

    Args:
        raw_options: the job's options as sent (already checked).
        job: facts the merge reports: ``started_at`` (epoch), ``decode`` seconds, ``deliveries``.
    """
    bounds = split_points(audio, piece_seconds)
    seconds = len(audio) / SAMPLE_RATE
    options = {k: v for k, v in raw_options.items() if k not in WHOLE_JOB_OPTIONS}
    if options.get("language") is None and multilingual:
        # One language for the whole file, detected once, as an unsplit job would.
        language, probability, _ = model.detect_language(audio[: 30 * SAMPLE_RATE])
        options["language"] = language
        job = job | {"language": language, "language_probability": round(float(probability), 4)}
    queue = (task.request.delivery_info or {}).get("routing_key")
    header = [
        _shown(
            transcribe_piece.s(
                str(audio_path),
                start / SAMPLE_RATE,
                end / SAMPLE_RATE,
                job_id=task.request.id,
                index=index,
                pieces=len(bounds),
                job_seconds=seconds,
                options=options,
            ).set(queue=queue)
        )
        for index, (start, end) in enumerate(bounds)
    ]
    body = _shown(merge_pieces.s(audio_path, job=job | {"seconds": seconds}, **raw_options).set(queue=queue))
    # A URL's download stays on this node for the pieces that run here (worker.pipeline.spool).
    retain(audio_path, get_settings(), _keep_seconds(get_settings(), seconds))
    redis = _redis(task.backend)
    if redis is not None:
        riding_out(lambda: cancel.mark_split(redis, task.request.id, len(bounds)))
    task.update_state(state=PROGRESS, meta=progress_meta(0.0, seconds, pieces=len(bounds), pieces_done=0))
    log.info(
        "job %s: %.0f s of audio split into %d pieces of at most %.0f s for the fleet",
        task.request.id,
        seconds,
        len(bounds),
        piece_seconds,
    )
    return task.replace(chord(header, body))


def _shown(signature: Signature) -> Signature:
    """``signature`` whose task events and headers show its URL masked (asr_protocol.redact)."""
    return signature.set(**reprs(signature.args, signature.kwargs))


def _redis(backend: Any) -> Any:
    """The result backend's Redis client (None for another backend: no progress, no cancel)."""
    return backend_client(backend)


def _keep_seconds(settings: Settings, job_seconds: float) -> float:
    """How long a split job's download is kept on a node for its pieces: the job's deadline."""
    return settings.deadline_for(job_seconds) or settings.timeout_base + 2 * job_seconds


def is_cancelled(backend: Any, job_id: str) -> bool:
    redis = _redis(backend)
    return redis is not None and riding_out(lambda: cancel.is_cancelled(redis, job_id))


def _forget(backend: Any, job_id: str) -> None:
    """The job ended: its pieces' hash goes (if Redis is away, it expires by itself)."""
    redis = _redis(backend)
    if redis is None:
        return
    try:
        cancel.forget(redis, job_id)
    except redis_errors.RedisError as exc:
        log.warning("job %s: pieces' hash left to expire (%s)", job_id, type(exc).__name__)


def _summed_progress(fields: dict[Any, Any], pieces: int, job_seconds: float) -> dict[str, Any]:
    """The job's progress from its pieces' hash (see :mod:`asr_protocol.cancel`)."""
    names = [name.decode() if isinstance(name, bytes) else name for name in fields]
    seconds_done = sum(float(v) for n, v in zip(names, fields.values(), strict=True) if n.isdigit())
    finished = sum(1 for n in names if n.startswith("done:"))
    return progress_meta(min(seconds_done, job_seconds), job_seconds, pieces=pieces, pieces_done=finished)


def _piece_publisher(
    backend: Any, job_id: str, index: int, pieces: int, job_seconds: float
) -> Callable[..., None] | None:
    """Add this piece's seconds done to the job's hash and publish the sum as the job's progress."""
    redis = _redis(backend)
    if redis is None:
        return None

    def store(fields: dict[Any, Any]) -> None:
        backend.store_result(job_id, _summed_progress(fields, pieces, job_seconds), PROGRESS)

    def publish(done: float, total: float, _heard: str = "") -> None:
        try:
            cancel.publish_piece(redis, job_id, index, done, total, store)
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            # Progress is advisory: a report that meets a Redis restart or failover is skipped,
            # the piece goes on (failing it would fail the whole job's chord).
            log.warning("job %s: progress of piece %d not published (%s)", job_id, index, type(exc).__name__)

    # A piece's text is not published: the job's text comes in order only from the merge.
    return publish


@app.task(name=PIECE_TASK_NAME, base=AudioTask, bind=True)
def transcribe_piece(
    self: AudioTask,
    audio_path: str,
    start: float,
    end: float,
    *,
    job_id: str,
    index: int,
    pieces: int,
    job_seconds: float,
    options: dict[str, Any],
) -> PieceRecord:
    """Transcribe seconds ``start`` to ``end`` of a fanned-out job's file.

    Returns the piece's segments with times in the whole file, or its ``error``
    when a retry cannot fix it (the merge fails the job with it).
    """
    try:
        with self.job() as job:
            settings = job.settings
            if is_cancelled(self.backend, job_id):
                log.info("job %s cancelled: piece %d of %d not started", job_id, index + 1, pieces)
                return _stopped(index, start, end)
            opts = job.options(options, job_only=False)
            check_diarization(opts, settings)
            path = job.audio_path(audio_path, probe=False)
            decode_started = time.perf_counter()
            audio = decode_range(path, start, end)
            # Later pieces on this node reuse this download; the merge (or a sweep) removes it.
            retain(audio_path, settings, _keep_seconds(settings, job_seconds))
            decode_seconds = time.perf_counter() - decode_started
            model, config = job.model()
            seconds = len(audio) / SAMPLE_RATE
            publish = _piece_publisher(self.backend, job_id, index, pieces, job_seconds)
            report = ProgressReporter(publish, settings.deadline_for(seconds))
            # Embedded while the decoder reads; clustered with every piece's in the merge.
            windows = start_piece_windows(audio, start) if opts.diarize else None
            try:
                transcript = transcribe_array(
                    model, audio, decoding_options(opts), on_progress=report, **settings.decoding()
                )
                report(seconds, seconds, force=True)
            except cancel.JobCancelled:
                log.info("job %s cancelled: piece %d of %d stops", job_id, index + 1, pieces)
                return _stopped(index, start, end)
            piece = _piece(
                transcript,
                index,
                start,
                end,
                config,
                timings={"decode": round(decode_seconds, 3), "transcribe": round(transcript.seconds, 3)},
                worker=worker_facts(self.request.hostname),
                deliveries=job.deliveries,
            )
            if windows is not None:
                piece["speaker_windows"] = with_piece_decoded(
                    audio, start, windows.result(), piece["segments"]
                )
            return piece
    except TransientError:
        raise  # retried by the task's policy
    except ASRError as exc:
        return _failed(index, start, end, exc)


def _piece(
    transcript: Transcript,
    index: int,
    start: float,
    end: float,
    config: dict[str, Any],
    *,
    timings: dict[str, float],
    worker: WorkerFacts,
    deliveries: int,
) -> PieceRecord:
    """A piece's transcript as the merge reads it, times in the whole file."""
    return {
        "index": index,
        "start": start,
        "end": end,
        "text": transcript.text,
        "language": transcript.language,
        "language_probability": transcript.language_probability,
        "segments": [shifted(segment, start, until=end) for segment in transcript.segments],
        "gaps": [shifted(gap, start, until=end) for gap in transcript.gaps],
        "decoder": transcript.decoder,
        "device": config["device"],
        "compute_type": config["compute_type"],
        "timings": timings,
        "worker": worker,
        "deliveries": deliveries,
    }


def _stopped(index: int, start: float, end: float) -> PieceRecord:
    """A piece of a cancelled job: it stopped (or never started), nothing to merge."""
    return {"index": index, "start": start, "end": end, "cancelled": True}


def _failed(index: int, start: float, end: float, exc: ASRError) -> PieceRecord:
    """A piece that met an error a retry cannot fix: the merge raises it as the job's."""
    return {
        "index": index,
        "start": start,
        "end": end,
        "error": {"type": type(exc).__name__, "message": str(exc)},
    }


def _summary(piece: PieceRecord) -> PieceSummary:
    """What the job's result says of one piece."""
    return {
        "index": piece["index"],
        "start": piece["start"],
        "end": piece["end"],
        "decoder": piece["decoder"],
        "timings": piece["timings"],
        "worker": piece["worker"],
        "deliveries": piece["deliveries"],
    }


def _end_cancelled(task: Task, options: dict[str, Any]) -> None:
    """Leave a cancelled job REVOKED (the producer stored it), tell its webhook, store nothing more."""
    _forget(task.backend, task.request.id)
    reason = "cancelled while split into pieces"
    if task.backend.get_state(task.request.id) != states.REVOKED:
        task.backend.mark_as_revoked(task.request.id, reason)
    queue_revoked(task.request.id, options, task.request.delivery_info, reason)
    log.info("job %s cancelled: its pieces stopped, nothing to merge", task.request.id)
    raise Ignore()


def _raise_piece_error(piece: PieceRecord, pieces: int) -> None:
    """Raise a failed piece's error as its own typed error, saying which piece it was."""
    error = piece["error"]
    kind = getattr(errors, error["type"], None)
    if not (isinstance(kind, type) and issubclass(kind, ASRError)):
        kind = ASRError
    where = f"piece {piece['index'] + 1} of {pieces}, {piece['start']:.1f}-{piece['end']:.1f} s"
    raise kind(f"{error['message']} ({where})")


@app.task(name=MERGE_TASK_NAME, bind=True, throws=(InputError,), masks_url_args=True)
def merge_pieces(
    self: Task, results: list[PieceRecord], audio_path: Any, *, job: dict[str, Any], **options: Any
) -> JobResult:
    """Join the pieces' transcripts into the job's result (stored under the job's id)."""
    pieces = sorted(results, key=lambda piece: piece["index"])
    discard(audio_path, get_settings())  # the pieces are done with this node's download
    if any(piece.get("cancelled") for piece in pieces) or is_cancelled(self.backend, self.request.id):
        _end_cancelled(self, options)
    for piece in pieces:
        if "error" in piece:
            _raise_piece_error(piece, len(pieces))
    segments = [
        segment | {"id": number}
        for number, segment in enumerate((s for piece in pieces for s in piece["segments"]), 1)
    ]
    first = pieces[0]
    transcript = Transcript(
        text=join_text(piece["text"] for piece in pieces),
        language=job.get("language", first["language"]),
        language_probability=job.get("language_probability", first["language_probability"]),
        duration=round(job["seconds"], 3),
        segments=segments,
        seconds=sum(piece["timings"]["transcribe"] for piece in pieces),
        decoder=BATCHED if any(piece["decoder"] == BATCHED for piece in pieces) else SEQUENTIAL,
        gaps=[gap for piece in pieces for gap in piece.get("gaps", [])],
    )
    settings = get_settings()
    timings = {
        "decode": job["decode"] + sum(piece["timings"]["decode"] for piece in pieces),
        "transcribe": transcript.seconds,
        "total": time.time() - job["started_at"],
    }
    opts = parse_options(
        options, webhook_hosts=settings.webhook_allowed_hosts, output_prefixes=settings.output_prefixes
    )
    speakers = None
    if opts.diarize:  # every piece's speaker windows clustered at once: one label per speaker
        transcript, labelled = merge_speakers(transcript, pieces, opts, load_known(opts, settings))
        speakers, timings["diarize"] = labelled["speakers"], labelled["diarize_seconds"]
    _forget(self.backend, self.request.id)
    return job_result(
        audio_path,
        transcript,
        opts,
        settings=settings,
        model_config={"device": first["device"], "compute_type": first["compute_type"]},
        timings=timings,
        worker=worker_facts(self.request.hostname),
        deliveries=job["deliveries"],
        pieces=[_summary(piece) for piece in pieces],
        speakers=speakers,
    )
