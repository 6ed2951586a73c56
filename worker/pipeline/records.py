"""The JSON records a job returns, typed: results stay plain JSON and mypy still checks them.

The shapes are the README's ("The result"); optional keys are marked ``NotRequired``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:  # NotRequired is typing's from 3.11; annotations are never evaluated here
    from typing import NotRequired

__all__ = ["GapRecord", "JobResult", "SegmentRecord", "WordRecord", "WorkerFacts"]


class WordRecord(TypedDict):
    """A word with its time in the file (with ``word_timestamps``)."""

    start: float
    end: float
    word: str
    probability: float
    speaker: NotRequired[str]


class SegmentRecord(TypedDict):
    """A stretch of the transcript with its time in the file."""

    id: int
    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    words: NotRequired[list[WordRecord]]
    #: Per-channel jobs: the channel's index or name.
    channel: NotRequired[int | str]
    speaker: NotRequired[str]


class GapRecord(TypedDict):
    """Speech left without words even when decoded again."""

    start: float
    end: float
    channel: NotRequired[int | str]


class WorkerFacts(TypedDict):
    """Which worker process did the work."""

    hostname: str | None
    pid: int


class JobResult(TypedDict):
    """What ``asr.transcribe`` stores in the result backend."""

    audio_path: str
    text: str
    language: str | None
    language_probability: float
    duration: float
    segments: list[SegmentRecord]
    gaps: list[GapRecord]
    options: dict[str, object]
    model: str
    device: str
    compute_type: str
    decoder: str
    timings: dict[str, float]
    worker: WorkerFacts
    deliveries: int
    #: Per-channel jobs: one summary per channel.
    channels: NotRequired[list[dict[str, object]]]
    #: Fanned-out jobs: each piece's start, end, worker and timings.
    pieces: NotRequired[list[dict[str, object]]]
    #: Clip batches: the batch's id and size.
    batch: NotRequired[dict[str, object]]
    #: With ``diarize``: each speaker's label and total speaking time.
    speakers: NotRequired[list[dict[str, object]]]
    #: With ``output_url``: ``{format: url}`` of the written transcripts.
    outputs: NotRequired[dict[str, str]]
