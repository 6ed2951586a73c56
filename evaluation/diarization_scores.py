"""Scores of a diarization against the truth: DER (pyannote.metrics), the count, words to the right speaker.

DER is ``pyannote.metrics``' DiarizationErrorRate with a 0.25 s collar, overlapped speech
scored; summed over files it is the pooled DER (total error over total speech). A word
is "to the right speaker" when the speaker it was given, mapped to the truth by DER's
optimal one-to-one mapping, is the truth speaker its time overlaps most.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["COLLAR", "Score", "annotation", "der_parts", "pooled", "words_right"]

COLLAR = 0.25

Spans = Sequence[tuple[float, float, Any]]


def annotation(spans: Spans) -> Any:
    """A ``pyannote.core.Annotation`` of ``(start, end, label)`` spans."""
    from pyannote.core import Annotation, Segment

    out = Annotation()
    for start, end, label in spans:
        if end > start:
            out[Segment(start, end)] = label
    return out


@dataclass(frozen=True)
class Score:
    """Seconds of error of one file (they add up across files) and the count it found."""

    total: float
    missed: float
    false_alarm: float
    confusion: float
    speakers_true: int
    speakers_found: int

    @property
    def der(self) -> float:
        return (self.missed + self.false_alarm + self.confusion) / max(self.total, 1e-9)


def der_parts(truth: Spans, found: Spans) -> Score:
    """DER's parts (seconds) of ``found`` against ``truth``."""
    from pyannote.metrics.diarization import DiarizationErrorRate

    reference, hypothesis = annotation(truth), annotation(found)
    parts = DiarizationErrorRate(collar=COLLAR)(reference, hypothesis, detailed=True)
    return Score(
        parts["total"],
        parts["missed detection"],
        parts["false alarm"],
        parts["confusion"],
        len(reference.labels()),
        len(hypothesis.labels()),
    )


def pooled(scores: Iterable[Score]) -> float:
    """Total error over total speech of several files."""
    scores = list(scores)
    total = sum(s.total for s in scores)
    return sum(s.missed + s.false_alarm + s.confusion for s in scores) / max(total, 1e-9)


def _mapping(truth: Spans, found: Spans) -> dict[Any, Any]:
    from pyannote.metrics.diarization import DiarizationErrorRate

    return dict(DiarizationErrorRate(collar=COLLAR).optimal_mapping(annotation(truth), annotation(found)))


def _most(start: float, end: float, spans: Spans) -> Any:
    best, label = 0.0, None
    for a, b, who in spans:
        overlap = min(end, b) - max(start, a)
        if overlap > best:
            best, label = overlap, who
    return label


def words_right(truth: Spans, found: Spans, words: Sequence[tuple[float, float, Any]]) -> tuple[int, int]:
    """``(right, scored)``: words (start, end, speaker given) whose speaker is the truth's.

    Words that overlap no truth speech are not scored.
    """
    mapping = _mapping(truth, found)
    right = scored = 0
    for start, end, given in words:
        expected = _most(start, end, truth)
        if expected is None:
            continue
        scored += 1
        right += mapping.get(given) == expected
    return right, scored
