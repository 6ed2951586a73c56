"""One stretch of audio through a decoder, with every stretch of speech accounted for.

Two decoders, one guarantee, "no speech lost" (README; docs/benchmarks.md):

- :func:`decode_batched` reads the speech as text-only windows of up to 30 s,
  several at once (faster-whisper's ``BatchedInferencePipeline``), times each
  word afterwards and builds sentence-like segments from the words
  (:mod:`worker.pipeline.segments`);
- :func:`decode_sequential` is ``WhisperModel.transcribe`` as faster-whisper
  runs it.

After either, :func:`worker.pipeline.speech.uncovered` lists the stretches of speech
that hold no word. Each is decoded again on its own by the sequential decoder;
one that still yields nothing is returned in ``gaps`` (and logged), so a lost
sentence is visible in the result instead of silently missing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from asr_protocol.records import SegmentRecord
from worker.pipeline.audio import SAMPLE_RATE
from worker.pipeline.segments import Run, Word, build_segments, in_time_order
from worker.pipeline.speech import WINDOW_SECONDS, Span, missed_speech, speech_onset, split_points

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from faster_whisper.transcribe import Segment

__all__ = ["Decoded", "batch_for", "decode_batched", "decode_sequential", "fill_gaps", "segment_dict"]

log = logging.getLogger(__name__)

#: Audio read on either side of a gap when it is decoded again: context for the decoder.
GAP_CONTEXT_SECONDS = 1.0
#: faster-whisper's defaults: a window over the first and under the second holds no speech; the
#: sequential decoder retries a window at a higher temperature under the second or over the third.
NO_SPEECH_THRESHOLD, LOG_PROB_THRESHOLD, COMPRESSION_RATIO_THRESHOLD = 0.6, -1.0, 2.4
#: Options of a job that the batched pass must not be given (it reads the windows it is handed).
_NOT_BATCHED = ("vad_filter",)

#: The fewest batches the first pass of a long stretch takes: progress moves at each batch's end.
PROGRESS_STEPS = 3
#: Beam search's length penalty in text-only windows (faster-whisper's default is 1). Without
#: timestamps Whisper often ends a window early, after a pause or a change of speaker, and the
#: rest must be read again (a full 30 s encoder pass each); favouring longer hypotheses halves
#: those re-reads at the same WER (python -m bench.accuracy; docs/benchmarks.md).
WINDOW_LENGTH_PENALTY = 3.0

#: A word of the batched pass with less probability than this does not count as heard: where
#: the decoder skipped a clause, the word alignment tends to lay an unsure word over it (a
#: 0.04 "The" over "you can do for your country"). A re-read of that stretch replaces it.
UNSURE_WORD = 0.1
#: A word of the batched pass lasts at most this long, up to its end: the word after skipped
#: speech is stretched back over it by the alignment (a 3 s "horizon"), which would hide the
#: skipped speech from the coverage check and put the word before the ones it follows.
LONGEST_WORD_SECONDS = 1.5

#: Called with the seconds of this stretch decoded so far and the text just decoded.
Progress = Callable[[float, str], None]


@dataclass
class Decoded:
    """Segments of one stretch of audio (times from its start) and the speech left without words."""

    segments: list[SegmentRecord]
    language: str | None
    language_probability: float
    gaps: list[Span] = field(default_factory=list)


def segment_dict(segment: Segment, *, offset: float = 0.0, number: int | None = None) -> SegmentRecord:
    """A faster-whisper ``Segment`` as a result's segment, times shifted by ``offset``."""
    data: SegmentRecord = {
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


def decode_sequential(
    model: WhisperModel,
    audio: np.ndarray,
    kwargs: dict[str, Any],
    *,
    batch_size: int = 1,
    on_progress: Progress | None = None,
) -> Decoded:
    """``WhisperModel.transcribe`` over ``audio``, then the coverage check on its segments' times.

    A segment without word timings starts where its sound does (:func:`speech_onset`),
    not in the silence before it, where Whisper's timestamps put it.
    """
    segments_iter, info = model.transcribe(audio, **kwargs)
    segments: list[SegmentRecord] = []
    for segment in segments_iter:
        record = segment_dict(segment, number=len(segments) + 1)
        if segment.words is None:  # with words, faster-whisper starts it at its first word
            record["start"] = speech_onset(audio, record["start"], record["end"])
        segments.append(record)
        if on_progress is not None:
            on_progress(segment.end, segment.text)
    heard = [(word["start"], word["end"]) for segment in segments for word in segment.get("words", [segment])]
    runs, gaps = fill_gaps(model, audio, heard, kwargs | {"language": info.language}, batch_size=batch_size)
    return Decoded(
        _in_order(segments, build_segments(runs, keep_words=bool(kwargs.get("word_timestamps")))),
        info.language,
        round(float(info.language_probability), 4),
        gaps,
    )


def decode_batched(
    model: WhisperModel,
    audio: np.ndarray,
    kwargs: dict[str, Any],
    *,
    batch_size: int,
    on_progress: Progress | None = None,
) -> Decoded:
    """Read the speech of ``audio`` as text-only windows, ``batch_size`` at a time, and time its words."""
    # Windows cover all the audio: Silero VAD misses quiet speech (a speaker with a cold after a
    # loud one scored under 0.1), so it decides only which stretches must hold words.
    windows = [(start / SAMPLE_RATE, end / SAMPLE_RATE) for start, end in split_points(audio, WINDOW_SECONDS)]
    keep_words = bool(kwargs.get("word_timestamps"))
    segments_iter, info = _read_windows(model, audio, windows, kwargs, batch_for(len(windows), batch_size))
    runs = []
    for segment in segments_iter:
        silent = _silent(segment)
        if not silent:
            runs.append(_run(segment.words or (), segment.avg_logprob, segment.no_speech_prob))
        if on_progress is not None:
            on_progress(segment.end, "" if silent else segment.text)
    heard = heard_spans(word for run in runs for word in run.words)
    recovered, gaps = fill_gaps(
        model, audio, heard, kwargs | {"language": info.language}, batch_size=batch_size
    )
    return Decoded(
        build_segments(in_time_order(_replaced(runs, recovered) + recovered), keep_words=keep_words),
        info.language,
        round(float(info.language_probability), 4),
        gaps,
    )


def heard_spans(words: Iterable[Word]) -> list[Span]:
    """The audio the batched pass's ``words`` vouch for: each sure word's time, unsure words none."""
    return [(word.start, word.end) for word in words if word.probability >= UNSURE_WORD]


def _replaced(runs: list[Run], recovered: list[Run]) -> list[Run]:
    """``runs`` without the unsure words that lie where a re-read found words (they stood in for them)."""
    if not recovered:
        return runs
    found = [(run.words[0].start, run.words[-1].end) for run in recovered if run.words]

    def kept(word: Word) -> bool:
        middle = (word.start + word.end) / 2
        return word.probability >= UNSURE_WORD or not any(a <= middle <= b for a, b in found)

    out = []
    for run in runs:
        words = tuple(word for word in run.words if kept(word))
        if words:
            out.append(Run(words, run.avg_logprob, run.no_speech_prob))
    return out


def batch_for(windows: int, batch_size: int) -> int:
    """A batch size that reads ``windows`` in :data:`PROGRESS_STEPS` batches or more, at most ``batch_size``.

    A batch's segments all arrive when it ends: a 100 s file in one batch of 4 would report
    0 % until it is done. Fewer windows a batch cost nothing measurable on CPU (docs/benchmarks.md).
    """
    return max(1, min(batch_size, -(-windows // PROGRESS_STEPS)))


def fill_gaps(
    model: WhisperModel, audio: np.ndarray, heard: list[Span], kwargs: dict[str, Any], *, batch_size: int = 8
) -> tuple[list[Run], list[Span]]:
    """Decode each stretch of speech without words again; return what it found and what stays empty.

    With ``batch_size`` over 1 the stretches are read first as one batch of short windows
    (cheap: a window that stopped early was a long one); those still without words are
    read by the sequential decoder, one by one, with its temperature fallback.
    """
    missed = missed_speech(audio, heard)
    if not missed:
        return [], []
    found: list[Run] = []
    left: list[tuple[float, float, Span]] = []
    bounds = _bounds(missed, heard)
    read = _decode_gaps_batched(model, audio, missed, bounds, kwargs, batch_size) if batch_size > 1 else None
    for (start, end), bound, run in zip(missed, bounds, read or [None] * len(missed), strict=True):
        if run is None:
            left.append((start, end, bound))
        else:
            found.append(run)
    gaps: list[Span] = []
    for start, end, bound in left:
        run = _decode_gap(model, audio, start, end, bound, kwargs)
        if run is None:
            gaps.append((start, end))
        else:
            found.append(run)
    log.info("%d stretches of speech had no words; %d decoded again", len(missed), len(missed) - len(gaps))
    for start, end in gaps:
        log.warning("speech at %.1f-%.1f s has no words, even decoded again", start, end)
    return found, gaps


def _bounds(missed: list[Span], heard: list[Span]) -> list[Span]:
    """Where a re-read of each gap of ``missed`` may add words: from the last heard word before
    it to the first after it, within the context read around it (the VAD's edges are rough:
    a word that starts before the gap's speech was not heard either). Two gaps with no word
    between them share the stretch between them at its middle, so no word is added twice."""
    bounds = []
    for start, end in missed:
        before = [e for _, e in heard if e <= start]
        after = [s for s, _ in heard if s >= end]
        bounds.append(
            (max([start - GAP_CONTEXT_SECONDS, *before]), min([end + GAP_CONTEXT_SECONDS, *after]))
        )
    for k in range(len(bounds) - 1):
        if bounds[k][1] > bounds[k + 1][0]:
            middle = (missed[k][1] + missed[k + 1][0]) / 2
            bounds[k] = (bounds[k][0], middle)
            bounds[k + 1] = (middle, bounds[k + 1][1])
    return bounds


def _decode_gaps_batched(
    model: WhisperModel,
    audio: np.ndarray,
    missed: list[Span],
    bounds: list[Span],
    kwargs: dict[str, Any],
    batch_size: int,
) -> list[Run | None]:
    """Each stretch of ``missed`` with some context, read as one batch of text-only windows."""
    # Stretches close together share a window (each window costs a full 30 s encoder pass),
    # with some context around them; windows never overlap, so each word is read once.
    duration = len(audio) / SAMPLE_RATE
    clips: list[Span] = []
    owner: list[int] = []  # the window of each stretch
    for start, end in missed:
        first = max(start - GAP_CONTEXT_SECONDS, clips[-1][1] if clips else 0.0)
        last = min(end + GAP_CONTEXT_SECONDS, duration)
        if clips and last - clips[-1][0] <= WINDOW_SECONDS:
            clips[-1] = (clips[-1][0], last)
        else:
            clips.append((first, min(last, first + WINDOW_SECONDS)))
        owner.append(len(clips) - 1)
    segments_iter, _ = _read_windows(model, audio, clips, kwargs, batch_size)
    words: list[list[Word]] = [[] for _ in missed]
    scores: list[list[tuple[float, float]]] = [[] for _ in missed]
    for segment in segments_iter:
        if _silent(segment):
            continue
        # A segment may be stamped a little before its window's start: it is the first window's then.
        window = max((k for k, (first, _) in enumerate(clips) if first <= segment.start + 1e-3), default=0)
        for at, bound in enumerate(bounds):
            inside = _words_within(segment, *bound)
            if owner[at] == window and inside:
                words[at] += inside
                scores[at].append((segment.avg_logprob, segment.no_speech_prob))
    return [
        Run(tuple(found), float(np.mean([s[0] for s in score])), float(np.mean([s[1] for s in score])))
        if found
        else None
        for found, score in zip(words, scores, strict=True)
    ]


def _decode_gap(
    model: WhisperModel, audio: np.ndarray, start: float, end: float, bounds: Span, kwargs: dict[str, Any]
) -> Run | None:
    """The words the sequential decoder hears in the gap ``start``-``end`` (within ``bounds``), or None."""
    first = max(0, int((start - GAP_CONTEXT_SECONDS) * SAMPLE_RATE))
    last = int((end + GAP_CONTEXT_SECONDS) * SAMPLE_RATE)
    offset = first / SAMPLE_RATE
    options = kwargs | {"word_timestamps": True, "vad_filter": False, "condition_on_previous_text": False}
    segments_iter, _ = model.transcribe(audio[first:last], **options)
    words, logprobs, no_speech = [], [], []
    for segment in segments_iter:
        inside = _words_within(segment, *bounds, offset=offset)
        if inside:
            words += inside
            logprobs.append(segment.avg_logprob)
            no_speech.append(segment.no_speech_prob)
    if not words:
        return None
    return Run(tuple(words), float(np.mean(logprobs)), float(np.mean(no_speech)))


def _read_windows(
    model: WhisperModel, audio: np.ndarray, windows: list[Span], kwargs: dict[str, Any], batch_size: int
) -> tuple[Iterator[Segment], Any]:
    """Decode each window of ``audio`` as text only, ``batch_size`` at a time, and time the words."""
    from faster_whisper import BatchedInferencePipeline

    batched = {k: v for k, v in kwargs.items() if k not in _NOT_BATCHED}
    return BatchedInferencePipeline(model).transcribe(
        audio,
        clip_timestamps=[{"start": start, "end": end} for start, end in windows],
        batch_size=batch_size,
        without_timestamps=True,
        **{"length_penalty": WINDOW_LENGTH_PENALTY} | batched | {"word_timestamps": True},
    )


def _word(word: Any, offset: float = 0.0) -> Word:
    """A faster-whisper word, its times shifted by ``offset``, at most :data:`LONGEST_WORD_SECONDS` long.

    A longer word is the alignment stretching it back over speech the decoder skipped: its
    end holds, its start moves up to it (a 3 s "horizon" would sort before the words it follows).
    """
    start, end = offset + word.start, offset + word.end
    return Word(max(start, end - LONGEST_WORD_SECONDS), end, word.word, word.probability)


def _words_within(segment: Segment, start: float, end: float, *, offset: float = 0.0) -> list[Word]:
    """The words of ``segment`` (its times shifted by ``offset``) whose middle lies in ``start``-``end``."""
    words = [_word(w, offset) for w in segment.words or ()]
    return [w for w in words if start <= (w.start + w.end) / 2 <= end]


def _silent(segment: Segment) -> bool:
    """faster-whisper's rule for text the sequential decoder drops: likely no speech, and unsure of it."""
    return segment.no_speech_prob > NO_SPEECH_THRESHOLD and segment.avg_logprob < LOG_PROB_THRESHOLD


def _run(words: Iterable[Any], avg_logprob: float, no_speech_prob: float) -> Run:
    return Run(tuple(_word(w) for w in words), avg_logprob, no_speech_prob)


def _in_order(segments: list[SegmentRecord], added: list[SegmentRecord]) -> list[SegmentRecord]:
    """``segments`` and ``added`` ordered by start time and numbered from 1."""
    if not added:
        return segments
    ordered = sorted(segments + added, key=lambda segment: segment["start"])
    return [segment | {"id": number} for number, segment in enumerate(ordered, 1)]
