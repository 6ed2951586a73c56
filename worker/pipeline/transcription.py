"""Transcribe decoded audio with a loaded model into plain JSON data."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from asr_protocol.records import GapRecord, SegmentRecord
from worker.pipeline.audio import SAMPLE_RATE
from worker.pipeline.decoding import (
    COMPRESSION_RATIO_THRESHOLD,
    LOG_PROB_THRESHOLD,
    Decoded,
    decode_batched,
    decode_sequential,
    segment_dict,
)
from worker.pipeline.errors import InvalidOptionsError
from worker.pipeline.options import TranscribeOptions
from worker.pipeline.plan import BATCHED, SEQUENTIAL, uses_batched_pipeline
from worker.pipeline.segments import join_text, shifted
from worker.pipeline.speech import WINDOW_SECONDS, missed_speech, split_points

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from faster_whisper.transcribe import Segment

__all__ = [
    "Transcript",
    "clip_batchable",
    "merge_channels",
    "transcribe_array",
    "transcribe_channels",
    "transcribe_clips",
]

#: A recording whose loudest sample is below this (-80 dBFS) is digital silence.
SILENCE_PEAK = 1e-4

#: Called with (seconds_done, seconds_total) as segments come out of the decoder, and
#: ``heard=`` the text just decoded.
ProgressCallback = Callable[..., None]
#: A channel's label in the result: its index (``channels="split"``) or the name the job gave.
ChannelLabel = int | str


@dataclass(frozen=True)
class Transcript:
    """What the model said about one recording, as JSON-ready values."""

    text: str
    language: str | None  #: None when there was no audio to detect it from
    language_probability: float
    duration: float
    segments: list[SegmentRecord]
    seconds: float
    #: Which decoder produced it: "sequential" (``WhisperModel.transcribe``) or "batched".
    decoder: str = SEQUENTIAL
    #: Stretches of speech (``{"start", "end"}`` seconds) left without words even when decoded again.
    gaps: list[GapRecord] = field(default_factory=list)


def check_model_supports(options: TranscribeOptions, multilingual: bool, model_id: str) -> None:
    """Refuse, instead of silently ignoring, what an English-only model cannot do."""
    if multilingual:
        return
    if options.task == "translate":
        raise InvalidOptionsError(f"model {model_id} is English-only and cannot translate")
    if options.language not in (None, "en"):
        raise InvalidOptionsError(
            f"model {model_id} is English-only; language={options.language!r} needs a multilingual model"
        )


def transcribe_array(
    model: WhisperModel,
    audio: np.ndarray,
    options: TranscribeOptions,
    *,
    default_beam_size: int,
    on_progress: ProgressCallback | None = None,
    chunk_seconds: float = 0.0,
    batch_size: int = 0,
) -> Transcript:
    """Run ``model`` over 16 kHz mono ``audio``, consuming the segment generator.

    Audio longer than one 30 s window is decoded by :func:`worker.pipeline.decoding.decode_batched`
    when ``batch_size`` > 1 (text-only windows, segments built from word timings),
    else by the sequential decoder; either way every stretch of speech left without
    words is decoded again or reported in ``gaps`` (``python -m bench.accuracy``).

    Audio longer than ``chunk_seconds`` is transcribed in pieces cut in pauses:
    faster-whisper holds the features of all it is given (about 1 GB per 20 minutes).
    The first piece's language is used for the rest.
    """
    started = time.perf_counter()
    total = len(audio) / SAMPLE_RATE
    if audio.size == 0 or float(np.max(np.abs(audio))) < SILENCE_PEAK:
        # Whisper hallucinates on digital silence ("You"); there is nothing to hear.
        return Transcript("", None, 0.0, round(total, 3), [], 0.0)
    kwargs = options.to_kwargs(default_beam_size)
    batched = uses_batched_pipeline(total, options, batch_size)
    segments: list[SegmentRecord] = []
    gaps: list[GapRecord] = []
    first: Decoded | None = None
    for start, end in split_points(audio, chunk_seconds):
        offset = start / SAMPLE_RATE
        report = None if on_progress is None else _progress_from(on_progress, offset, total)
        if batched:
            decoded = decode_batched(
                model, audio[start:end], kwargs, batch_size=batch_size, on_progress=report
            )
        else:
            decoded = decode_sequential(
                model, audio[start:end], kwargs, batch_size=batch_size, on_progress=report
            )
        if first is None:
            first = decoded
            kwargs.setdefault("language", decoded.language)
        segments += [
            shifted(s, offset) | {"id": n} for n, s in enumerate(decoded.segments, len(segments) + 1)
        ]
        gaps += [{"start": round(offset + a, 3), "end": round(offset + b, 3)} for a, b in decoded.gaps]
    assert first is not None
    return Transcript(
        text=join_text(segment["text"] for segment in segments),
        language=first.language,
        language_probability=first.language_probability,
        duration=round(total, 3),
        segments=segments,
        seconds=time.perf_counter() - started,
        decoder=BATCHED if batched else SEQUENTIAL,
        gaps=gaps,
    )


def _progress_from(report: ProgressCallback, offset: float, total: float) -> Callable[[float, str], None]:
    """Report a piece's seconds done as seconds of the whole audio, with the text just heard."""

    def progress(done: float, heard: str = "") -> None:
        report(min(offset + done, total), total, heard=heard)

    return progress


#: A batched window whose text stops this long before the clip's end left speech
#: that the sequential decoder would read in a second pass.
UNREAD_TAIL_SECONDS = 1.0


def clip_batchable(seconds: float, options: TranscribeOptions, multilingual: bool) -> bool:
    """Whether a clip can share a batch of windows with other jobs' clips.

    It must fit one window, and ask for nothing one batched pass decodes
    differently: a temperature ladder, VAD, a prompt or hotwords (the pass has
    none), word timings (the pass moves a segment's start to its first word),
    per-channel transcripts, or, on a multilingual model, language detection (one
    batch has one language).
    """
    return (
        0 < seconds <= WINDOW_SECONDS
        and not isinstance(options.temperature, tuple)
        and not options.vad_filter
        and options.initial_prompt is None
        and options.hotwords is None
        and not options.word_timestamps
        and options.channels is None
        and (options.language is not None or not multilingual)
    )


def transcribe_clips(
    model: WhisperModel,
    clips: Sequence[np.ndarray],
    options: TranscribeOptions,
    *,
    default_beam_size: int,
    batch_size: int,
) -> list[Transcript | None]:
    """Decode several jobs' clips (each at most one window) as one batch of windows.

    The clips are laid end to end and each is one window of faster-whisper's
    ``BatchedInferencePipeline`` (``clip_timestamps``), ``batch_size`` windows per
    forward pass; segments are returned to their clip with the clip's own times.
    A clip's transcript is what the sequential decoder gives it alone whenever
    that decoder would read it in one pass at temperature 0; where it would not
    (text that stops before the clip ends, speech the VAD hears with no segment
    over it, a window under faster-whisper's log-probability or over its
    compression-ratio threshold, no segment at all, digital silence) the clip's
    entry is ``None``, for the caller to decode alone.
    """
    from faster_whisper import BatchedInferencePipeline

    started = time.perf_counter()
    results: list[Transcript | None] = [None] * len(clips)
    audible = [i for i, clip in enumerate(clips) if clip.size and float(np.max(np.abs(clip))) >= SILENCE_PEAK]
    if not audible:
        return results
    bounds, offset = [], 0
    for i in audible:
        bounds.append((offset, offset + len(clips[i])))
        offset += len(clips[i])
    kwargs = options.to_kwargs(default_beam_size) | {"batch_size": batch_size, "without_timestamps": False}
    segments_iter, info = BatchedInferencePipeline(model).transcribe(
        np.concatenate([clips[i] for i in audible]),
        clip_timestamps=[{"start": a / SAMPLE_RATE, "end": b / SAMPLE_RATE} for a, b in bounds],
        **kwargs,
    )
    found: dict[int, list[Segment]] = {i: [] for i in audible}
    starts = [a / SAMPLE_RATE for a, _ in bounds]
    for segment in segments_iter:
        # Each window's segments lie inside it: the last window that starts at or before it.
        at = max(k for k, start in enumerate(starts) if start <= segment.start + 1e-3)
        found[audible[at]].append(segment)
    seconds = time.perf_counter() - started
    for k, i in enumerate(audible):
        segments, offset_seconds, duration = found[i], starts[k], len(clips[i]) / SAMPLE_RATE
        if not _read_as_alone(clips[i], segments, offset_seconds):
            continue
        results[i] = Transcript(
            text="".join(s.text for s in segments).strip(),
            language=info.language,
            language_probability=round(float(info.language_probability), 4),
            duration=round(duration, 3),
            segments=[segment_dict(s, offset=-offset_seconds, number=n) for n, s in enumerate(segments, 1)],
            seconds=seconds,
            decoder=BATCHED,
        )
    return results


def _read_as_alone(clip: np.ndarray, segments: list[Segment], offset: float) -> bool:
    """Whether one batched pass read ``clip`` as the sequential decoder alone would."""
    duration = len(clip) / SAMPLE_RATE
    return bool(
        segments
        and offset + duration - segments[-1].end <= UNREAD_TAIL_SECONDS
        and all(s.avg_logprob >= LOG_PROB_THRESHOLD for s in segments)
        and all(s.compression_ratio <= COMPRESSION_RATIO_THRESHOLD for s in segments)
        and not missed_speech(clip, [(s.start - offset, s.end - offset) for s in segments])
    )


def merge_channels(
    transcripts: Sequence[Transcript], labels: Sequence[ChannelLabel]
) -> tuple[Transcript, list[dict[str, Any]]]:
    """One transcript from per-channel ones, and the per-channel summaries.

    Segments are tagged with their ``channel`` and ordered by start time, then
    by channel (a stable order for equal starts), and renumbered from 1; the
    text is theirs in that order. The language is the first channel's that has one.
    """
    tagged = sorted(
        (
            (segment["start"], index, label, segment)
            for index, (transcript, label) in enumerate(zip(transcripts, labels, strict=True))
            for segment in transcript.segments
        ),
        key=lambda item: (item[0], item[1]),
    )
    segments: list[SegmentRecord] = [
        segment | {"id": number, "channel": label} for number, (_, _, label, segment) in enumerate(tagged, 1)
    ]
    spoken = next((t for t in transcripts if t.language is not None), transcripts[0])
    merged = Transcript(
        text=join_text(s["text"] for s in segments),
        language=spoken.language,
        language_probability=spoken.language_probability,
        duration=max(t.duration for t in transcripts),
        segments=segments,
        seconds=sum(t.seconds for t in transcripts),
        decoder=BATCHED if any(t.decoder == BATCHED for t in transcripts) else SEQUENTIAL,
        gaps=[
            gap | {"channel": label}
            for transcript, label in zip(transcripts, labels, strict=True)
            for gap in transcript.gaps
        ],
    )
    summaries = [
        {"channel": label, "text": t.text, "language": t.language, "decoder": t.decoder}
        for t, label in zip(transcripts, labels, strict=True)
    ]
    return merged, summaries


def transcribe_channels(
    model: WhisperModel,
    tracks: Sequence[np.ndarray],
    labels: Sequence[ChannelLabel],
    options: TranscribeOptions,
    *,
    default_beam_size: int,
    on_progress: ProgressCallback | None = None,
    chunk_seconds: float = 0.0,
    batch_size: int = 0,
) -> tuple[Transcript, list[dict[str, Any]]]:
    """Transcribe each channel on its own, one after the other, and merge them.

    Progress covers all channels: ``seconds_total`` is the sum of their durations.
    """
    grand_total = sum(len(track) for track in tracks) / SAMPLE_RATE
    transcripts = []
    done_before = 0.0
    for track in tracks:
        progress = None if on_progress is None else _shifted(on_progress, done_before, grand_total)
        transcripts.append(
            transcribe_array(
                model,
                track,
                options,
                default_beam_size=default_beam_size,
                on_progress=progress,
                chunk_seconds=chunk_seconds,
                batch_size=batch_size,
            )
        )
        done_before += len(track) / SAMPLE_RATE
    return merge_channels(transcripts, labels)


def _shifted(report: ProgressCallback, offset: float, total: float) -> ProgressCallback:
    """Report one channel's progress as part of all channels' seconds."""
    return lambda done, _channel_total, heard="": report(offset + done, total, heard=heard)
