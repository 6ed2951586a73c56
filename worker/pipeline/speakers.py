"""Speaker labels on a transcript: each word and segment gets a ``speaker``, segments split where it changes.

Pure code, no Celery. Labels are ``SPEAKER_00``, ``SPEAKER_01``, ... in the order the
speakers first speak (:mod:`worker.pipeline.diarization` numbers them so). A word takes the
speaker of the turn it overlaps most (the nearest turn when it overlaps none); a
segment with words is cut wherever its words change speaker, one without words
takes the speaker it overlaps most, whole.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np

from asr_protocol.records import SegmentRecord
from worker.pipeline.diarization import Turn, Windows
from worker.pipeline.speaker_encoder import EMBEDDING_DIM
from worker.pipeline.transcription import ChannelLabel, Transcript

__all__ = [
    "add_speakers",
    "channel_speakers",
    "label_segments",
    "speaker_name",
    "speakers_summary",
    "windows_data",
    "windows_from",
]


#: Names of some speakers by their index (known speakers, ``worker.pipeline.known_speakers``).
Names = Mapping[int, str]


def speaker_name(index: int, names: Names | None = None) -> str:
    """The name ``names`` gives ``index``, else ``SPEAKER_00`` for 0 (pyannote's and WhisperX's labels)."""
    if names and index in names:
        return names[index]
    return f"SPEAKER_{index:02d}"


def _speaker_at(start: float, end: float, turns: Sequence[Turn]) -> int | None:
    """The speaker of the turn that overlaps ``start``-``end`` most, else of the nearest turn."""
    if not turns:
        return None
    overlaps = [min(end, t.end) - max(start, t.start) for t in turns]
    best = int(np.argmax(overlaps))
    if overlaps[best] > 0:
        return turns[best].speaker
    gaps = [max(t.start - end, start - t.end) for t in turns]
    return turns[int(np.argmin(gaps))].speaker


def _split(segment: dict[str, Any], words: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``segment`` cut into one segment per run of words of one speaker."""
    runs = [list(run) for _, run in itertools.groupby(words, key=lambda w: w["speaker"])]
    if len(runs) == 1:
        return [segment | {"speaker": runs[0][0]["speaker"], "words": words}]
    return [
        segment
        | {
            "start": segment["start"] if i == 0 else run[0]["start"],
            "end": segment["end"] if i == len(runs) - 1 else run[-1]["end"],
            "text": "".join(w["word"] for w in run).strip(),
            "speaker": run[0]["speaker"],
            "words": run,
        }
        for i, run in enumerate(runs)
    ]


def label_segments(
    segments: Sequence[dict[str, Any]],
    turns: Sequence[Turn],
    *,
    keep_words: bool = True,
    names: Names | None = None,
) -> list[dict[str, Any]]:
    """``segments`` with a ``speaker`` on each (and on each word), cut at speaker changes, renumbered.

    Args:
        keep_words: keep the ``words`` (with their speakers) in the segments; the job may have
            asked for none and had them timed only to place the cuts.
        names: names of known speakers by index; the others are ``SPEAKER_xx``.
    """
    out: list[dict[str, Any]] = []
    for segment in segments:
        if segment.get("words"):
            words = [
                w | {"speaker": speaker_name(_speaker_at(w["start"], w["end"], turns) or 0, names)}
                for w in segment["words"]
            ]
            out += _split(segment, words)
        else:
            speaker = _speaker_at(segment["start"], segment["end"], turns) or 0
            out.append(segment | {"speaker": speaker_name(speaker, names)})
    if not keep_words:
        out = [{k: v for k, v in s.items() if k != "words"} for s in out]
    return [s | {"id": number} for number, s in enumerate(out, 1)]


def speakers_summary(turns: Sequence[Turn], names: Names | None = None) -> list[dict[str, Any]]:
    """One entry per speaker: its label and its total speaking time in seconds."""
    seconds: dict[int, float] = {}
    for turn in turns:
        seconds[turn.speaker] = seconds.get(turn.speaker, 0.0) + turn.end - turn.start
    return [{"speaker": speaker_name(i, names), "seconds": round(seconds[i], 3)} for i in sorted(seconds)]


def add_speakers(
    transcript: Transcript, turns: Sequence[Turn], *, keep_words: bool, names: Names | None = None
) -> tuple[Transcript, list[dict[str, Any]]]:
    """``transcript`` with speaker labels (``names`` for known speakers), and its ``speakers`` list."""
    # Segments are plain dicts while they are cut and labelled, records again after.
    segments = label_segments(
        cast(list[dict[str, Any]], transcript.segments), turns, keep_words=keep_words, names=names
    )
    summary = speakers_summary(turns, names)
    return dataclasses.replace(transcript, segments=cast(list[SegmentRecord], segments)), summary


def channel_speakers(
    transcript: Transcript, labels: Sequence[ChannelLabel], *, keep_words: bool
) -> tuple[Transcript, list[dict[str, Any]]]:
    """A per-channel transcript labelled one speaker per channel (``SPEAKER_00`` is the first channel).

    Each channel's speaking time is the time its segments cover.
    """
    index = {label: i for i, label in enumerate(labels)}
    turns = [Turn(s["start"], s["end"], index[s["channel"]]) for s in transcript.segments]
    segments = []
    for segment in transcript.segments:
        name = speaker_name(index[segment["channel"]])
        labelled = segment | {"speaker": name}
        if "words" in segment:
            labelled["words"] = [w | {"speaker": name} for w in segment["words"]]
        if not keep_words:
            labelled.pop("words", None)
        segments.append(labelled)
    return dataclasses.replace(transcript, segments=segments), speakers_summary(turns)


def windows_data(windows: Windows) -> dict[str, Any]:
    """``windows`` as JSON data (what a fanned-out piece returns); :func:`windows_from` reads it."""
    return {
        "speech": [[round(a, 3), round(b, 3)] for a, b in windows.speech],
        "times": np.round(windows.times, 3).tolist(),
        # float16 in base64: a 5-minute piece's ~600 embeddings in ~400 kB instead of ~1.2 MB of floats.
        "embeddings": base64.b64encode(windows.embeddings.astype("<f2").tobytes()).decode("ascii"),
        "narrowband": windows.narrowband,
    }


def windows_from(data: dict[str, Any]) -> Windows:
    """The :class:`~worker.pipeline.diarization.Windows` that :func:`windows_data` wrote."""
    return Windows(
        speech=[(float(a), float(b)) for a, b in data["speech"]],
        times=np.asarray(data["times"], dtype=np.float64).reshape(-1, 2),
        embeddings=np.frombuffer(base64.b64decode(data["embeddings"]), dtype="<f2")
        .astype(np.float32)
        .reshape(-1, EMBEDDING_DIM),
        narrowband=bool(data.get("narrowband", False)),
    )
