"""Transcribe decoded audio with a loaded model into plain JSON data."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from worker.audio import SAMPLE_RATE
from worker.errors import InvalidOptionsError
from worker.options import TranscribeOptions

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from faster_whisper.transcribe import Segment

__all__ = [
    "Transcript",
    "merge_channels",
    "split_points",
    "transcribe_array",
    "transcribe_channels",
    "uses_batched_pipeline",
]

#: A recording whose loudest sample is below this (-80 dBFS) is digital silence.
SILENCE_PEAK = 1e-4
#: Whisper hears 30 s at a time; audio that fits in one window gains nothing from batching.
WINDOW_SECONDS = 30.0
#: The decoder paths a result can name.
SEQUENTIAL, BATCHED = "sequential", "batched"

#: Called with (seconds_done, seconds_total) as segments come out of the decoder.
ProgressCallback = Callable[[float, float], None]
#: A channel's label in the result: its index (``channels="split"``) or the name the job gave.
ChannelLabel = int | str


@dataclass(frozen=True)
class Transcript:
    """What the model said about one recording, as JSON-ready values."""

    text: str
    language: str | None  #: None when there was no audio to detect it from
    language_probability: float
    duration: float
    segments: list[dict[str, Any]]
    seconds: float
    #: Which decoder produced it: "sequential" (``WhisperModel.transcribe``) or "batched".
    decoder: str = SEQUENTIAL


def _segment_dict(segment: Segment, *, offset: float = 0.0, number: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": segment.id if number is None else number,
        "start": round(offset + segment.start, 3),
        "end": round(offset + segment.end, 3),
        "text": segment.text.strip(),
        "avg_logprob": round(segment.avg_logprob, 4),
        "no_speech_prob": round(segment.no_speech_prob, 4),
    }
    if segment.words is not None:
        data["words"] = [
            {
                "start": round(offset + word.start, 3),
                "end": round(offset + word.end, 3),
                "word": word.word,
                "probability": round(word.probability, 4),
            }
            for word in segment.words
        ]
    return data


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


def split_points(
    audio: np.ndarray, max_seconds: float, *, frame_seconds: float = 0.1
) -> list[tuple[int, int]]:
    """Cut ``audio`` into pieces of at most ``max_seconds``, each cut at the quietest moment.

    The cut before each limit falls in the quietest ``frame_seconds`` frame of the
    last quarter of the piece (at most its last 30 s), so it lands in a pause
    between words, not inside one. ``max_seconds`` 0 keeps the audio whole.

    Returns:
        ``(start, end)`` sample indices that cover the audio without gaps or overlap.
    """
    total = len(audio)
    longest = int(max_seconds * SAMPLE_RATE)
    if not max_seconds or total <= longest:
        return [(0, total)]
    search = int(min(30.0, max_seconds / 4) * SAMPLE_RATE)
    frame = max(1, int(frame_seconds * SAMPLE_RATE))
    bounds = []
    start = 0
    while total - start > longest:
        window = audio[start + longest - search : start + longest]
        usable = len(window) // frame * frame
        energy = np.square(window[:usable].reshape(-1, frame)).mean(axis=1)
        cut = start + longest - search + int(np.argmin(energy)) * frame + frame // 2
        bounds.append((start, cut))
        start = cut
    bounds.append((start, total))
    return bounds


def uses_batched_pipeline(seconds: float, options: TranscribeOptions, batch_size: int) -> bool:
    """Whether audio of ``seconds`` goes through ``BatchedInferencePipeline``.

    Only audio longer than one window gains from it, and only a batch size over
    1 batches anything. A job that asks for a temperature ladder keeps the
    sequential decoder, the only one that falls back along it.
    """
    return batch_size > 1 and seconds > WINDOW_SECONDS and not isinstance(options.temperature, tuple)


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

    Audio longer than one 30 s window is decoded by faster-whisper's
    ``BatchedInferencePipeline`` when ``batch_size`` > 1: the Silero VAD cuts
    the speech into pieces of up to 30 s, dropping silence, and ``batch_size``
    of them are decoded at once, without conditioning on earlier text (so one
    misheard window cannot derail the next). On long real speech it is 2-3x
    faster than the sequential decoder at an equal or lower word error rate
    (``python -m bench.quality``).

    Audio longer than ``chunk_seconds`` is transcribed piece by piece (cut in
    pauses by :func:`split_points`): faster-whisper computes the features of
    everything it is given at once, about 1 GB of memory per 20 minutes, so a
    long file would otherwise hold gigabytes. The first piece's language is
    used for the rest.
    """
    started = time.perf_counter()
    total = len(audio) / SAMPLE_RATE
    if audio.size == 0 or float(np.max(np.abs(audio))) < SILENCE_PEAK:
        # Whisper hallucinates on digital silence ("You"); there is nothing to hear.
        return Transcript("", None, 0.0, round(total, 3), [], 0.0)
    kwargs = options.to_kwargs(default_beam_size)
    batched = uses_batched_pipeline(total, options, batch_size)
    if batched:
        from faster_whisper import BatchedInferencePipeline

        # Segment timings are kept (without_timestamps=False) for subtitles.
        decode: Any = BatchedInferencePipeline(model).transcribe
        kwargs |= {"batch_size": batch_size, "vad_filter": True, "without_timestamps": False}
    else:
        decode = model.transcribe
    segments: list[dict[str, Any]] = []
    raw_text: list[str] = []
    first_info = None
    for start, end in split_points(audio, chunk_seconds):
        offset = start / SAMPLE_RATE
        segments_iter, info = decode(audio[start:end], **kwargs)
        if first_info is None:
            first_info = info
            kwargs.setdefault("language", info.language)
        for segment in segments_iter:
            segments.append(_segment_dict(segment, offset=offset, number=len(segments) + 1))
            raw_text.append(segment.text)
            if on_progress is not None:
                on_progress(min(offset + segment.end, total), total)
    assert first_info is not None
    return Transcript(
        text="".join(raw_text).strip(),
        language=first_info.language,
        language_probability=round(float(first_info.language_probability), 4),
        duration=round(total, 3),
        segments=segments,
        seconds=time.perf_counter() - started,
        decoder=BATCHED if batched else SEQUENTIAL,
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
    segments = [
        {"id": number, "channel": label, **{k: v for k, v in segment.items() if k != "id"}}
        for number, (_, _, label, segment) in enumerate(tagged, 1)
    ]
    spoken = next((t for t in transcripts if t.language is not None), transcripts[0])
    merged = Transcript(
        text=" ".join(s["text"] for s in segments if s["text"]),
        language=spoken.language,
        language_probability=spoken.language_probability,
        duration=max(t.duration for t in transcripts),
        segments=segments,
        seconds=sum(t.seconds for t in transcripts),
        decoder=BATCHED if any(t.decoder == BATCHED for t in transcripts) else SEQUENTIAL,
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
    return lambda done, _channel_total: report(offset + done, total)
