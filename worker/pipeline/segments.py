"""Sentence-like segments from word timings, sized for subtitles.

The batched decoder reads long audio as text-only windows (timestamp tokens cost
it accuracy, faster-whisper #985, #1427) and times each word afterwards. The
segments a result lists are built here from those words: a segment ends at a
sentence end or a pause, and never grows past :data:`MAX_SEGMENT_SECONDS` or
:data:`MAX_SEGMENT_CHARS` (two subtitle lines of 42 characters), so SRT and VTT
cues stay readable.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from asr_protocol.records import SegmentRecord

__all__ = [
    "MAX_SEGMENT_CHARS",
    "MAX_SEGMENT_SECONDS",
    "Run",
    "Word",
    "build_segments",
    "in_time_order",
    "join_text",
    "shifted",
]

#: The longest a segment may last: common subtitle practice shows a cue for at most 7 s.
MAX_SEGMENT_SECONDS = 7.0
#: The most characters a segment may hold: two subtitle lines of 42.
MAX_SEGMENT_CHARS = 84
#: A silence this long between two words ends a segment.
PAUSE_SECONDS = 0.8
#: A sentence end closes a segment once it lasts this long; a shorter one ("Yes.") joins the next.
MIN_SENTENCE_SECONDS = 1.0
_SENTENCE_ENDS = (".", "?", "!", "…")
_Timed = TypeVar("_Timed", bound=Mapping[str, Any])
_CLAUSE_ENDS = (",", ";", ":", "—")


@dataclass(frozen=True)
class Word:
    """One timed word as faster-whisper gives it (its text keeps the leading space)."""

    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class Run:
    """Words decoded in one pass, with that pass's scores (which every segment cut from it keeps)."""

    words: tuple[Word, ...]
    avg_logprob: float
    no_speech_prob: float


def in_time_order(runs: Sequence[Run]) -> list[Run]:
    """``runs`` as runs whose words follow one another in time, each with its own pass's scores.

    A run read again for speech the first pass skipped can fall inside a first-pass run
    (Whisper left out a sentence in the middle of a window): that run is split around it.
    """
    tagged = sorted(
        ((word, k) for k, run in enumerate(runs) for word in run.words), key=lambda pair: pair[0].start
    )
    ordered = []
    for k, group in itertools.groupby(tagged, key=lambda pair: pair[1]):
        run = runs[k]
        ordered.append(Run(tuple(word for word, _ in group), run.avg_logprob, run.no_speech_prob))
    return ordered


def build_segments(
    runs: Sequence[Run],
    *,
    keep_words: bool,
    max_seconds: float = MAX_SEGMENT_SECONDS,
    max_chars: int = MAX_SEGMENT_CHARS,
) -> list[SegmentRecord]:
    """Cut each run's words into segments, numbered from 1 in the order of the runs.

    A segment never spans two runs. ``keep_words`` adds each segment's ``words``.
    """
    segments: list[SegmentRecord] = []
    for run in runs:
        for words in _cut(run.words, max_seconds, max_chars):
            segments.append(_segment(len(segments) + 1, words, run, keep_words))
    return segments


def _cut(words: Sequence[Word], max_seconds: float, max_chars: int) -> list[list[Word]]:
    pieces: list[list[Word]] = []
    current: list[Word] = []
    for word in words:
        if current and word.start - current[-1].end >= PAUSE_SECONDS:
            pieces.append(current)
            current = []
        while current and _too_long([*current, word], max_seconds, max_chars):
            at = _break_at(current)
            pieces.append(current[:at])
            current = current[at:]
        current.append(word)
        sentence = word.end - current[0].start >= MIN_SENTENCE_SECONDS
        if sentence and word.word.rstrip().endswith(_SENTENCE_ENDS):
            pieces.append(current)
            current = []
    if current:
        pieces.append(current)
    return pieces


def _too_long(words: Sequence[Word], max_seconds: float, max_chars: int) -> bool:
    return words[-1].end - words[0].start > max_seconds or len(_text(words)) > max_chars


def _break_at(words: Sequence[Word]) -> int:
    """Where to split ``words`` that cannot take one more: after a clause, else at the longest pause.

    Only the second half is considered, so no piece is left much shorter than the limit.
    """
    candidates = range(max(1, len(words) // 2), len(words))
    if not candidates:
        return len(words)
    clauses = [i for i in candidates if words[i - 1].word.rstrip().endswith(_CLAUSE_ENDS)]
    if clauses:
        return clauses[-1]
    return max(candidates, key=lambda i: (words[i].start - words[i - 1].end, i))


def _text(words: Sequence[Word]) -> str:
    return "".join(word.word for word in words).strip()


def _segment(number: int, words: Sequence[Word], run: Run, keep_words: bool) -> SegmentRecord:
    data: SegmentRecord = {
        "id": number,
        "start": round(words[0].start, 3),
        "end": round(words[-1].end, 3),
        "text": _text(words),
        "avg_logprob": round(run.avg_logprob, 4),
        "no_speech_prob": round(run.no_speech_prob, 4),
    }
    if keep_words:
        data["words"] = [
            {
                "start": round(word.start, 3),
                "end": round(word.end, 3),
                "word": word.word,
                "probability": round(word.probability, 4),
            }
            for word in words
        ]
    return data


def shifted(item: _Timed, offset: float, *, until: float = math.inf) -> _Timed:
    """``item`` (a segment, word or gap) moved ``offset`` s later, its words too, none past ``until``.

    Audio decoded from ``offset`` s into a file is stamped from 0; the result is in the
    file's time. Whisper may stamp the last words a little past the end of the audio it
    was given: ``until`` (the next piece's start) clamps them.
    """
    moved = dict(item) | {
        "start": round(min(item["start"] + offset, until), 3),
        "end": round(min(item["end"] + offset, until), 3),
    }
    if "words" in item:
        moved["words"] = [shifted(word, offset, until=until) for word in item["words"]]
    return cast(_Timed, moved)


def join_text(texts: Iterable[str]) -> str:
    """A transcript's text from its segments' (or pieces') texts in order, empty ones left out."""
    return " ".join(text for text in texts if text)
