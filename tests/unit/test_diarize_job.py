"""A diarized job's speakers are found in the child's speaker thread while its audio is decoded."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from worker.pipeline import diarization, diarize_job
from worker.pipeline.diarization import Diarization, Turn, Windows
from worker.pipeline.options import parse_options
from worker.pipeline.transcription import Transcript


def _found() -> Diarization:
    windows = Windows(
        speech=[(0.0, 1.0)],
        times=np.array([[0.0, 1.0]]),
        embeddings=np.ones((1, diarization.EMBEDDING_DIM), dtype=np.float32),
    )
    return Diarization([Turn(0.0, 1.0, 0)], windows, np.zeros(1, dtype=np.int64), seconds=0.5)


def test_the_speakers_are_found_beside_the_caller_and_used_once(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded = threading.Event()
    calls: list[dict[str, Any]] = []

    def diarize(audio: np.ndarray, **counts: Any) -> Diarization:
        calls.append({"thread": threading.current_thread().name, **counts})
        assert decoded.wait(10), "the caller waited for the speakers before it decoded"
        return _found()

    monkeypatch.setattr(diarization, "diarize", diarize)
    options = parse_options({"diarize": True, "num_speakers": 2})
    pending = diarize_job.start_diarization(np.zeros(16000, dtype=np.float32), options)
    decoded.set()  # the decoder's work would be here, while diarize runs
    transcript = Transcript("", "en", 1.0, duration=1.0, segments=[], seconds=0.1)
    _, extra = diarize_job.label_transcript(np.zeros(16000), transcript, options, found=pending)

    assert len(calls) == 1  # the speakers found beside the decoder, not again after it
    assert calls[0]["thread"].startswith("speakers") and calls[0]["thread"] != threading.current_thread().name
    assert calls[0]["num_speakers"] == 2
    assert extra["diarize_seconds"] == 0.5


def test_a_failure_in_the_speaker_thread_reaches_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    def diarize(audio: np.ndarray, **counts: Any) -> Diarization:
        raise diarize_job.DiarizationUnavailableError("no encoder")

    monkeypatch.setattr(diarization, "diarize", diarize)
    options = parse_options({"diarize": True})
    pending = diarize_job.start_diarization(np.zeros(16000, dtype=np.float32), options)
    transcript = Transcript("", "en", 1.0, duration=1.0, segments=[], seconds=0.1)
    with pytest.raises(diarize_job.DiarizationUnavailableError, match="no encoder"):
        diarize_job.label_transcript(np.zeros(16000), transcript, options, found=pending)
