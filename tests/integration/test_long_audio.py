"""Long audio is transcribed in pieces cut in pauses: same words, bounded memory."""

from __future__ import annotations

import pytest

from producer import Client
from producer.local import LocalStack
from tests.conftest import audio_file, normalise, references, word_error_rate
from tests.integration.audio_tools import concatenate

pytestmark = pytest.mark.integration


def test_pieces_give_the_same_transcript_as_the_whole_file(tmp_path, client: Client):
    # 8 x jfk.flac with 1 s pauses: 96 s of real speech; pieces of at most 40 s.
    long_file = concatenate(audio_file("jfk.flac"), 8, tmp_path / "jfk_x8.wav")
    reference = " ".join([str(references()["jfk.flac"]["text"])] * 8)
    whole = client.transcribe(long_file, timeout=300)  # the session worker: ASR_CHUNK_SECONDS=600
    with LocalStack(concurrency=1, env={"ASR_CHUNK_SECONDS": "40"}, log_path=tmp_path / "w.log") as stack:
        other = Client(stack.url, stack.url)
        pieces = other.transcribe(long_file, timeout=300, word_timestamps=True)
        other.close()
    assert pieces["duration"] == pytest.approx(96.0, abs=0.1)
    starts = [s["start"] for s in pieces["segments"]]
    assert starts == sorted(starts) and pieces["segments"][-1]["end"] > 80, (
        "timestamps run over the whole file"
    )
    assert [s["id"] for s in pieces["segments"]] == list(range(1, len(pieces["segments"]) + 1))
    words = [w for s in pieces["segments"] for w in s["words"]]
    assert all(s["start"] - 0.01 <= w["start"] for s in pieces["segments"] for w in s["words"])
    assert words[-1]["end"] > 80
    # tiny.en on repeated speech varies by a few words whatever the context (whole file:
    # 0-0.6 % WER here, pieces 0-2.8 % by piece size), so the check is on what a bad cut
    # would do: lose or double the speech around it.
    assert word_error_rate(reference, whole["text"]) <= 0.05
    assert word_error_rate(reference, pieces["text"]) <= 0.05
    assert abs(len(normalise(pieces["text"])) - len(normalise(reference))) <= 0.03 * len(normalise(reference))
