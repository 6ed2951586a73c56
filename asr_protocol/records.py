"""The JSON records a job returns, typed: results stay plain JSON and mypy still checks them.

The shapes are the README's ("The result"); optional keys are marked ``NotRequired``.
A split job's pieces hand the merge a :class:`PieceRecord` each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:  # NotRequired is typing's from 3.11; annotations are never evaluated here
    from typing import NotRequired

__all__ = [
    "GapRecord",
    "JobResult",
    "PieceError",
    "PieceRecord",
    "PieceSummary",
    "SegmentRecord",
    "WordRecord",
    "WorkerFacts",
]


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


class PieceError(TypedDict):
    """A piece's error that a retry cannot fix: its class name (``worker.pipeline.errors``) and message."""

    type: str
    message: str


class PieceSummary(TypedDict):
    """What a split job's result says of each piece."""

    index: int
    start: float
    end: float
    decoder: str
    timings: dict[str, float]
    worker: WorkerFacts
    deliveries: int


class PieceRecord(TypedDict):
    """What ``asr.transcribe_piece`` returns to ``asr.merge_pieces``: times in the whole file.

    A piece that met bad input carries ``error`` only; one whose job was cancelled,
    ``cancelled`` only; else its transcript.
    """

    index: int
    start: float
    end: float
    error: NotRequired[PieceError]
    cancelled: NotRequired[bool]
    text: NotRequired[str]
    language: NotRequired[str | None]
    language_probability: NotRequired[float]
    segments: NotRequired[list[SegmentRecord]]
    gaps: NotRequired[list[GapRecord]]
    decoder: NotRequired[str]
    device: NotRequired[str]
    compute_type: NotRequired[str]
    timings: NotRequired[dict[str, float]]
    worker: NotRequired[WorkerFacts]
    deliveries: NotRequired[int]
    #: With ``diarize``: the piece's speaker embeddings, clustered with every piece's in the merge.
    speaker_windows: NotRequired[dict[str, object]]


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
    pieces: NotRequired[list[PieceSummary]]
    #: Clip batches: the batch's id and size.
    batch: NotRequired[dict[str, object]]
    #: With ``diarize``: each speaker's label and total speaking time.
    speakers: NotRequired[list[dict[str, object]]]
    #: With ``output_url``: ``{format: url}`` of the written transcripts.
    outputs: NotRequired[dict[str, str]]
