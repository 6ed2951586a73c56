"""Run diarization methods over built conversations and score them (``bench/diarization.py`` prints them).

A conversation's speaker windows are embedded once; each method (the worker's threshold and
silhouette count, or NME-SC) clusters those same windows, and the worker's own
:func:`~worker.pipeline.diarization.speaker_turns` makes the turns. Given the decoder's words
(:func:`with_words`), a method may count from the windows that hold a word, and the turns may
be the whole job's: the words the VAD missed become turns
(:func:`~worker.pipeline.diarization.with_decoded_speech`), as in the worker.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evaluation.conversations import Conversation
from evaluation.diarization_scores import Score, der_parts, pooled, words_right

__all__ = [
    "Embedded",
    "Method",
    "count_rates",
    "embed",
    "found_of",
    "known_speaker_rates",
    "missed_by_vad",
    "name_rates",
    "nme_sc_method",
    "rule_method",
    "turns_of",
    "with_words",
    "word_rate",
]

#: ``(start, end)`` seconds.
Span = tuple[float, float]
#: A clustering: a conversation's windows and the decoder's words (None: not decoded) in, a
#: speaker (0..k-1) per window out.
Method = Callable[[Any, Sequence[Span] | None], np.ndarray]


@dataclass(frozen=True)
class Embedded:
    """A conversation and its speaker windows."""

    conversation: Conversation
    windows: Any  #: worker.pipeline.diarization.Windows
    #: The decoder's words of this version (``(start, end)`` seconds); None: not decoded.
    words: tuple[Span, ...] | None = None
    #: The turns are the whole job's: the words the VAD missed made turns (with ``words``).
    job: bool = False


def embed(
    conversations: Sequence[Conversation], regions: Callable[[np.ndarray], Any] | None = None
) -> list[Embedded]:
    """Each conversation's speaker windows (Silero VAD, CAM++), as the worker computes them;
    ``regions`` finds the speech instead of the worker's ``speech_regions``."""
    from worker.pipeline.diarization import embed_windows, speech_regions

    find = regions or speech_regions
    return [Embedded(c, embed_windows(c.audio, find(c.audio))) for c in conversations]


def rule_method(rules: dict[str, Any], *, heard: bool = False) -> Method:
    """The worker's count, with ``rules`` (band -> ``CountRule``) in place of its ``COUNT_RULES``:
    each conversation's windows take the rule of the band the worker detects in them. ``heard``:
    the count found from the windows that hold a decoded word (``cluster_heard``, as the worker
    does), else from every window."""
    from worker.pipeline.diarization import cluster, cluster_heard

    def run(windows: Any, words: Sequence[Span] | None) -> np.ndarray:
        if heard:  # the fallback to every window, under half of them with a word, takes the same rule
            return cluster_heard(windows, words, rules=(rules[windows.band], rules[windows.band]))
        return cluster(windows.embeddings, rule=rules[windows.band])

    return run


def nme_sc_method(fraction: float) -> Method:
    """NME-SC (``evaluation/nme_sc.py``) searching ``p`` up to ``fraction`` of the windows."""
    from evaluation import nme_sc

    def run(windows: Any, words: Sequence[Span] | None) -> np.ndarray:
        embeddings = windows.embeddings
        if len(embeddings) < 3:
            return np.zeros(len(embeddings), dtype=np.int64)
        saved, nme_sc.MAX_NEIGHBOUR_FRACTION = nme_sc.MAX_NEIGHBOUR_FRACTION, fraction
        try:
            return nme_sc.count_and_labels(embeddings)[0]
        finally:
            nme_sc.MAX_NEIGHBOUR_FRACTION = saved

    return run


def missed_by_vad(items: Sequence[tuple[Embedded, str]]) -> float:
    """The share (%) of the named speaker's true speech in each item that its VAD did not hear."""
    total = heard = 0.0
    for item, who in items:
        for start, end, speaker in item.conversation.truth:
            if speaker == who:
                total += end - start
                heard += sum(max(0.0, min(end, b) - max(start, a)) for a, b in item.windows.speech)
    return round(100 * (1 - heard / max(total, 1e-9)), 1)


def with_words(
    items: Sequence[Embedded], segments: Sequence[Sequence[dict[str, Any]]], *, job: bool
) -> list[Embedded]:
    """``items`` with the words of their decoded ``segments`` (one list per item); ``job``: their
    turns the whole job's (the words the VAD missed made turns)."""
    from worker.pipeline.diarize_job import word_spans

    return [
        dataclasses.replace(item, words=tuple(word_spans(segs)), job=job)
        for item, segs in zip(items, segments, strict=True)
    ]


def found_of(item: Embedded, method: Method) -> Any:
    """The ``worker.pipeline.diarization.Diarization`` ``method`` gives ``item``: speakers numbered
    by first turn; with the words the VAD missed as turns when ``item`` is the job's."""
    from worker.pipeline.diarization import (
        Diarization,
        _by_first_turn,
        _compact,
        speaker_turns,
        with_decoded_speech,
    )

    labels = _compact(method(item.windows, item.words)) if len(item.windows.embeddings) else np.zeros(0, int)
    turns, labels = _by_first_turn(speaker_turns(item.windows, labels), labels)
    found = Diarization(turns, item.windows, labels, seconds=0.0)
    if not item.job or item.words is None:
        return found
    return with_decoded_speech(item.conversation.audio, found, item.words)


def turns_of(item: Embedded, method: Method) -> tuple[list[Any], np.ndarray]:
    """The turns (numbered by first turn) and window labels ``method`` gives ``item`` (:func:`found_of`)."""
    found = found_of(item, method)
    return found.turns, found.labels


def score(item: Embedded, turns: Sequence[Any]) -> Score:
    return der_parts(item.conversation.truth, [(t.start, t.end, t.speaker) for t in turns])


def count_rates(rows: Sequence[tuple[Conversation, Score]]) -> dict[str, Any]:
    """Pooled DER and the share of conversations whose count is exact, 2-3 and 4-6 speakers apart."""
    small = [s for c, s in rows if c.count <= 3]
    large = [s for c, s in rows if c.count >= 4]

    def exact(scores: Sequence[Score]) -> float | None:
        return (
            round(100 * float(np.mean([s.speakers_found == s.speakers_true for s in scores])), 1)
            if scores
            else None
        )

    total = max(sum(s.total for _, s in rows), 1e-9)
    return {
        "conversations": len(rows),
        "der": round(100 * pooled(s for _, s in rows), 1),
        # DER's parts (% of the speech): speech no speaker was given, given where nobody spoke,
        # given to the wrong speaker.
        "missed": round(100 * sum(s.missed for _, s in rows) / total, 1),
        "false_alarm": round(100 * sum(s.false_alarm for _, s in rows) / total, 1),
        "confusion": round(100 * sum(s.confusion for _, s in rows) / total, 1),
        "count_exact_2_3": exact(small),
        "count_exact_4_6": exact(large),
        "found_minus_true": {
            str(d): int(sum(s.speakers_found - s.speakers_true == d for _, s in rows)) for d in range(-3, 4)
        },
    }


def word_rate(item: Embedded, turns: Sequence[Any], segments: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """Words (of the real transcript of ``item``) given to the right speaker, and words scored."""
    from worker.pipeline.speakers import label_segments, speaker_name

    labelled = label_segments(segments, turns)
    words = [(w["start"], w["end"], w["speaker"]) for s in labelled for w in s.get("words", [])]
    found = [(t.start, t.end, speaker_name(t.speaker)) for t in turns]
    return words_right(item.conversation.truth, found, words)


def _named_turns(item: Embedded, turns: Sequence[Any], names: dict[int, str]) -> list[tuple[str, str | None]]:
    """``(true speaker, name given)`` of each true phrase: the name of the found speaker it overlaps most."""
    out = []
    for start, end, who in item.conversation.truth:
        overlap: dict[int, float] = {}
        for t in turns:
            length = min(end, t.end) - max(start, t.start)
            if length > 0:
                overlap[t.speaker] = overlap.get(t.speaker, 0.0) + length
        speaker = max(overlap, key=overlap.__getitem__) if overlap else None
        out.append((who, None if speaker is None else names.get(speaker)))
    return out


def known_speaker_rates(
    items: Sequence[Embedded],
    method: Method,
    references: dict[str, Any],
    thresholds: Sequence[tuple[float, float]],
) -> dict[tuple[float, float], dict[str, Any]]:
    """For each ``(match, turn)`` threshold pair (``known_speakers.name_turns``): of the true
    phrases of speakers with a reference, the share named right; of all phrases, the share
    given a name not theirs.

    Every conversation is given every reference of its side of the split: those of speakers
    in it and those of speakers not in it (impostors).
    """
    from worker.pipeline.known_speakers import name_turns

    labelled = [(item, found_of(item, method)) for item in items]
    out: dict[tuple[float, float], dict[str, Any]] = {}
    for match, turn in thresholds:
        right = known = wrong = total = 0
        for item, found in labelled:
            named, names = name_turns(
                found.windows, found.turns, found.labels, references, threshold=match, turn_threshold=turn
            )
            for who, given in _named_turns(item, named, names):
                total += 1
                if who in references:
                    known += 1
                    right += given == who
                wrong += given is not None and given != who
        out[(match, turn)] = name_rates(right, wrong, known, total)
    return out


def name_rates(right: int, wrong: int, known: int, turns: int) -> dict[str, Any]:
    """Shares (%) of ``known`` phrases of known speakers named right, of all ``turns`` named wrongly."""
    return {
        "named_right": round(100 * right / max(known, 1), 1),
        "named_wrongly": round(100 * wrong / max(turns, 1), 2),
        "right": right,
        "wrong": wrong,
        "known_turns": known,
        "turns": turns,
    }
