"""Speaker labels in an ``asr.transcribe`` job: the refusal, the decoding it needs, the labelling.

Pure code, no Celery. A job with ``diarize=true`` is decoded with word timings (the
words place the cuts where the speaker changes; they stay out of the result unless
the job asked for them) while the mono audio's speech is embedded in a thread of the child
(:func:`start_diarization`); then the speakers are counted from the windows that hold a
decoded word (:func:`worker.pipeline.diarization.label`), the words the decoder heard where
the VAD heard no speech become turns of the nearest speaker
(:func:`worker.pipeline.diarization.with_decoded_speech`),
:mod:`worker.pipeline.known_speakers` names those who match a reference (turn by turn), and
:mod:`worker.pipeline.speakers` labels the transcript. A per-channel job (``channels``) is not
diarized: each channel is one speaker.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from asr_protocol.records import PieceRecord, SegmentRecord
from worker.pipeline.errors import DiarizationUnavailableError
from worker.pipeline.options import TranscribeOptions
from worker.pipeline.settings import Settings
from worker.pipeline.transcription import ChannelLabel, Transcript

if TYPE_CHECKING:
    from worker.pipeline.diarization import Windows
    from worker.pipeline.known_speakers import Reference

__all__ = [
    "check_diarization",
    "decoding_options",
    "label_transcript",
    "load_known",
    "merge_speakers",
    "piece_windows",
    "start_diarization",
    "start_piece_windows",
    "warm",
    "with_piece_decoded",
    "word_spans",
]

log = logging.getLogger(__name__)


def check_diarization(options: TranscribeOptions, settings: Settings) -> None:
    """Refuse ``diarize=true`` on a worker that does not diarize.

    Raises:
        DiarizationUnavailableError: ASR_DIARIZATION is off on this worker.
    """
    if options.diarize and not settings.diarization:
        raise DiarizationUnavailableError(
            "option diarize=true: this worker does not diarize (start it with ASR_DIARIZATION=true "
            "and requirements-diarization.txt installed)"
        )


def decoding_options(options: TranscribeOptions) -> TranscribeOptions:
    """The options to decode with: a diarized job needs word timings to cut at speaker changes."""
    if options.diarize and not options.word_timestamps:
        return dataclasses.replace(options, word_timestamps=True)
    return options


@functools.cache
def _speaker_thread() -> ThreadPoolExecutor:
    """This child's one thread for speakers, made on first use (in the child, never the parent).

    The decoder leaves room on the cores: tiny.en on two CPU threads does not keep both busy
    (``python -m bench.diarization`` times the job with the step after decoding and beside it),
    and on a GPU node the step runs on the CPU while the GPU decodes. A job that fails or is
    cancelled while its step runs leaves the step to finish here; the next job's waits behind it.
    """
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="speakers")


def _timed_windows(audio: np.ndarray) -> tuple[Windows, float]:
    from worker.pipeline import diarization

    started = time.perf_counter()
    return diarization.speech_windows(audio), time.perf_counter() - started


def start_diarization(audio: np.ndarray) -> Future[tuple[Windows, float]]:
    """Begin embedding the speech of ``audio`` (16 kHz mono) while the caller decodes it: the
    windows and the seconds they took. The speakers are counted once the words are known
    (:func:`label_transcript`)."""
    return _speaker_thread().submit(_timed_windows, audio)


def start_piece_windows(audio: np.ndarray, start: float) -> Future[dict[str, Any]]:
    """Begin embedding a fanned-out piece's speakers (:func:`piece_windows`), while it is decoded."""
    return _speaker_thread().submit(piece_windows, audio, start)


def label_transcript(
    audio: np.ndarray | None,
    transcript: Transcript,
    options: TranscribeOptions,
    *,
    channels: Sequence[ChannelLabel] = (),
    known: Mapping[str, Reference] | None = None,
    found: Future[tuple[Windows, float]] | None = None,
) -> tuple[Transcript, dict[str, Any]]:
    """``transcript`` with speaker labels, and what the result adds (``speakers``, seconds spent).

    Args:
        audio: the job's 16 kHz mono audio (unused for a per-channel job).
        channels: the channel labels of a per-channel job: each channel is a speaker.
        known: reference embeddings of known speakers by name (:func:`load_known`).
        found: the speech being embedded already (:func:`start_diarization`); else embedded here.
    """
    from worker.pipeline import known_speakers, speakers

    if channels:
        labelled, summary = speakers.channel_speakers(
            transcript, channels, keep_words=options.word_timestamps
        )
        return labelled, {"speakers": summary, "diarize_seconds": 0.0}
    assert audio is not None
    from worker.pipeline import diarization

    windows, seconds = (found or start_diarization(audio)).result()
    started = time.perf_counter()
    words = word_spans(transcript.segments)
    turns, labels = diarization.label(
        windows,
        num_speakers=options.num_speakers,
        min_speakers=options.min_speakers,
        max_speakers=options.max_speakers,
        words=words,
    )
    found_now = diarization.Diarization(turns, windows, labels, seconds + time.perf_counter() - started)
    result = diarization.with_decoded_speech(audio, found_now, words)
    turns, names = known_speakers.name_turns(result.windows, result.turns, result.labels, known or {})
    labelled, summary = speakers.add_speakers(
        transcript, turns, keep_words=options.word_timestamps, names=names
    )
    log.info(
        "diarized %.1f s of audio: %d speakers in %.2f s", transcript.duration, len(summary), result.seconds
    )
    return labelled, {"speakers": summary, "diarize_seconds": result.seconds}


def word_spans(segments: Sequence[SegmentRecord]) -> list[tuple[float, float]]:
    """``(start, end)`` of every word the decoder timed in ``segments``."""
    return [(w["start"], w["end"]) for s in segments for w in s.get("words") or []]


def piece_windows(audio: np.ndarray, start: float) -> dict[str, Any]:
    """A fanned-out piece's speaker embeddings (times in the whole file), as JSON data."""
    from worker.pipeline import diarization, speakers

    return speakers.windows_data(diarization.speech_windows(audio, offset=start))


def with_piece_decoded(
    audio: np.ndarray, start: float, windows: dict[str, Any], segments: Sequence[SegmentRecord]
) -> dict[str, Any]:
    """A piece's :func:`piece_windows` data with, under ``decoded``, the stretches of its words
    (``segments``: times in the whole file) that its VAD missed, each embedded as one window
    (``diarization.embed_stretches``): the merge makes them turns of the nearest speaker."""
    from worker.pipeline import diarization, speakers

    heard = speakers.windows_from(windows).speech
    stretches = diarization.stretches_outside(word_spans(segments), heard)
    if not stretches:
        return windows
    return windows | {
        "decoded": speakers.windows_data(diarization.embed_stretches(audio, stretches, offset=start))
    }


def merge_speakers(
    transcript: Transcript,
    pieces: Sequence[PieceRecord],
    options: TranscribeOptions,
    known: Mapping[str, Reference] | None = None,
) -> tuple[Transcript, dict[str, Any]]:
    """Label a merged transcript by clustering all its pieces' embeddings at once.

    One clustering over the whole file is what keeps a speaker's label the same in every piece.
    """
    from worker.pipeline import diarization, known_speakers, speakers

    started = time.perf_counter()
    data = [p["speaker_windows"] for p in pieces]
    windows = diarization.Windows.join([speakers.windows_from(d) for d in data])
    turns, labels = diarization.label(
        windows,
        num_speakers=options.num_speakers,
        min_speakers=options.min_speakers,
        max_speakers=options.max_speakers,
        words=word_spans(transcript.segments),
    )
    found = diarization.Diarization(turns, windows, labels, 0.0)
    decoded = [speakers.windows_from(cast(dict[str, Any], d["decoded"])) for d in data if "decoded" in d]
    if decoded:  # the words each piece's VAD missed (with_piece_decoded)
        found = diarization.with_stretches(found, diarization.Windows.join(decoded))
    turns, names = known_speakers.name_turns(found.windows, found.turns, found.labels, known or {})
    labelled, summary = speakers.add_speakers(
        transcript, turns, keep_words=options.word_timestamps, names=names
    )
    return labelled, {"speakers": summary, "diarize_seconds": time.perf_counter() - started}


def load_known(options: TranscribeOptions, settings: Settings) -> dict[str, Reference]:
    """The reference embeddings of the job's ``known_speakers`` (none without them).

    Raises:
        InvalidOptionsError: a reference cannot be read, is too short or long, or has no speech.
    """
    if not options.known_speakers or not settings.diarization:
        return {}
    from worker.pipeline.known_speakers import load_references

    return load_references(options.known_speakers, settings)


def warm() -> None:
    """Load and warm the speaker encoder in this process (``worker_process_init``), on as many CPU
    threads as the Whisper model of this process has: the two never run at once in a child."""
    from worker.asr import get_model_config
    from worker.pipeline.diarization import ENCODER_THREADS, warm_encoder

    threads = int(get_model_config().get("cpu_threads") or ENCODER_THREADS)
    log.info("speaker encoder warmed in %.2f s (%d CPU threads)", warm_encoder(threads), threads)
