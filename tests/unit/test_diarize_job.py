"""A diarized job's speakers are found in the child's speaker thread while its audio is decoded."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import numpy as np
import pytest

from worker.pipeline import diarization, diarize_job
from worker.pipeline.diarization import Diarization, Turn, Windows
from worker.pipeline.options import parse_options
from worker.pipeline.transcription import Transcript


def _windows(count: int = 1) -> Windows:
    return Windows(
        speech=[(0.0, float(count))],
        times=np.array([[float(i), i + 1.0] for i in range(count)]),
        embeddings=np.eye(diarization.EMBEDDING_DIM, dtype=np.float32)[:count],
    )


def _found() -> Diarization:
    return Diarization([Turn(0.0, 1.0, 0)], _windows(), np.zeros(1, dtype=np.int64), seconds=0.5)


def test_the_speech_is_embedded_beside_the_caller_once_and_counted_with_the_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoded = threading.Event()
    calls: list[str] = []

    def speech_windows(audio: np.ndarray, **kwargs: Any) -> Windows:
        calls.append(threading.current_thread().name)
        assert decoded.wait(10), "the caller waited for the speakers before it decoded"
        a, b, c = np.eye(diarization.EMBEDDING_DIM, dtype=np.float32)[:3]
        return dataclasses.replace(_windows(3), embeddings=np.stack([a, a + c / 2, b]))

    monkeypatch.setattr(diarization, "speech_windows", speech_windows)
    options = parse_options({"diarize": True, "num_speakers": 3})
    pending = diarize_job.start_diarization(np.zeros(3 * 16000, dtype=np.float32))
    decoded.set()  # the decoder's work would be here, while the speech is embedded
    transcript = Transcript("", "en", 1.0, duration=3.0, segments=[], seconds=0.1)
    _, extra = diarize_job.label_transcript(np.zeros(3 * 16000), transcript, options, found=pending)

    assert len(calls) == 1  # embedded beside the decoder, not again after it
    assert calls[0].startswith("speakers") and calls[0] != threading.current_thread().name
    assert len(extra["speakers"]) == 3  # the job's num_speakers (found alone: 2), applied after decoding
    assert extra["diarize_seconds"] > 0


def test_a_failure_in_the_speaker_thread_reaches_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    def speech_windows(audio: np.ndarray, **kwargs: Any) -> Windows:
        raise diarize_job.DiarizationUnavailableError("no encoder")

    monkeypatch.setattr(diarization, "speech_windows", speech_windows)
    options = parse_options({"diarize": True})
    pending = diarize_job.start_diarization(np.zeros(16000, dtype=np.float32))
    transcript = Transcript("", "en", 1.0, duration=1.0, segments=[], seconds=0.1)
    with pytest.raises(diarize_job.DiarizationUnavailableError, match="no encoder"):
        diarize_job.label_transcript(np.zeros(16000), transcript, options, found=pending)


def test_the_count_is_found_from_the_windows_that_hold_a_word() -> None:
    a, b, c = np.eye(diarization.EMBEDDING_DIM, dtype=np.float32)[:3]
    near_a = (a + 0.2 * c) / np.linalg.norm(a + 0.2 * c)
    # Six windows of voice a with words, two of b with words, and a cough's window (c) without any.
    windows = Windows(
        speech=[(0.0, 9.0)],
        times=np.array([[float(i), i + 1.0] for i in range(9)]),
        embeddings=np.stack([a, a, a, b, b, near_a, a, a, c]),
    )
    words = [(i + 0.3, i + 0.6) for i in range(8)]

    assert diarization.holding_words(windows, words).tolist() == [True] * 8 + [False]
    heard = diarization.cluster_heard(windows, words)
    assert len(set(heard.tolist())) == 2 and heard[8] == heard[5] == heard[0] != heard[3]
    assert len(set(diarization.cluster_heard(windows, None).tolist())) == 3  # the cough is a voice
    # Under half the windows with a word: the decoder heard too little, every window counts.
    assert len(set(diarization.cluster_heard(windows, words[:3]).tolist())) == 3


def test_only_words_outside_the_speech_make_stretches_joined_across_short_pauses() -> None:
    speech = [(0.0, 2.0), (5.0, 6.0)]
    words = [(1.5, 2.4), (2.6, 2.9), (3.2, 3.5), (4.2, 4.6), (5.5, 5.8), (7.0, 7.3)]
    # 1.5-2.4 and 5.5-5.8 overlap speech; 2.6-3.5 are 0.3 s apart (joined), 4.2 is 0.7 s on (not).
    assert diarization.stretches_outside(words, speech) == [(2.6, 3.5), (4.2, 4.6), (7.0, 7.3)]


def test_each_stretch_becomes_a_turn_of_the_nearest_centroid_and_the_first_to_speak_is_00() -> None:
    a, b = np.eye(diarization.EMBEDDING_DIM, dtype=np.float32)[:2]
    windows = Windows(
        speech=[(2.0, 4.0), (5.0, 7.0)],
        times=np.array([[2.0, 3.5], [5.0, 6.5]]),
        embeddings=np.stack([a, b]),
    )
    found = Diarization([Turn(2.0, 4.0, 0), Turn(5.0, 7.0, 1)], windows, np.array([0, 1]), seconds=1.0)
    extra = Windows(
        speech=[(0.5, 1.2), (4.2, 4.6)], times=np.array([[0.5, 1.2], [4.2, 4.6]]), embeddings=np.stack([b, a])
    )

    out = diarization.with_stretches(found, extra)

    # The stretch at 0.5 s is b's: b now speaks first and is renumbered 0.
    assert out.turns == [Turn(0.5, 1.2, 0), Turn(2.0, 4.0, 1), Turn(4.2, 4.6, 1), Turn(5.0, 7.0, 0)]
    assert out.labels.tolist() == [1, 0, 0, 1]
    assert len(out.windows.embeddings) == 4 and out.windows.speech[-2:] == [(0.5, 1.2), (4.2, 4.6)]
    assert diarization.with_stretches(found, Windows([], np.zeros((0, 2)), np.zeros((0, 192)))) is found


def test_the_decoder_words_reach_the_speakers(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[tuple[float, float]]] = []

    def with_decoded_speech(audio: np.ndarray, found: Diarization, words: Any) -> Diarization:
        seen.append(list(words))
        return found

    monkeypatch.setattr(diarization, "with_decoded_speech", with_decoded_speech)
    segment = {
        "id": 1,
        "start": 0.0,
        "end": 1.0,
        "text": " hi there",
        "avg_logprob": 0.0,
        "no_speech_prob": 0.0,
    }
    words = [
        {"start": 0.1, "end": 0.4, "word": " hi", "probability": 0.9},
        {"start": 0.5, "end": 0.9, "word": " there", "probability": 0.9},
    ]
    transcript = Transcript(
        "hi there", "en", 1.0, duration=1.0, segments=[segment | {"words": words}], seconds=0.1
    )
    options = parse_options({"diarize": True})
    labelled, _ = diarize_job.label_transcript(np.zeros(16000), transcript, options, found=_done(_windows()))

    assert seen == [[(0.1, 0.4), (0.5, 0.9)]]
    assert [s["speaker"] for s in labelled.segments] == ["SPEAKER_00"]


def _done(windows: Windows) -> Any:
    from concurrent.futures import Future

    future: Future[tuple[Windows, float]] = Future()
    future.set_result((windows, 0.5))
    return future
