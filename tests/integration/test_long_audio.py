"""Long audio is transcribed in pieces cut in pauses: same words, bounded memory."""

from __future__ import annotations

import pytest

from producer import Client
from producer.local import LocalStack
from tests.conftest import audio_file, normalise, references, word_error_rate
from tests.integration.audio_tools import concatenate

pytestmark = pytest.mark.integration


def test_long_audio_in_pieces_loses_and_doubles_no_speech_at_the_cuts(tmp_path):
    # 8 x jfk.flac with 1 s pauses: 96 s of real speech; pieces of at most 40 s (cut near 35 s and 71 s).
    long_file = concatenate(audio_file("jfk.flac"), 8, tmp_path / "jfk_x8.wav")
    reference = " ".join([str(references()["jfk.flac"]["text"])] * 8)
    with LocalStack(concurrency=1, env={"ASR_CHUNK_SECONDS": "40"}, log_path=tmp_path / "w.log") as stack:
        client = Client(stack.url, stack.url)
        # temperature 0: repeated speech trips Whisper's compression-ratio check, and the
        # fallback temperatures sample at random, which made runs differ by whole sentences.
        pieces = client.transcribe(long_file, timeout=300, word_timestamps=True, temperature=0.0)
        client.close()
    assert pieces["duration"] == pytest.approx(96.0, abs=0.1)
    starts = [s["start"] for s in pieces["segments"]]
    assert starts == sorted(starts) and pieces["segments"][-1]["end"] > 80, (
        "timestamps run over the whole file"
    )
    assert [s["id"] for s in pieces["segments"]] == list(range(1, len(pieces["segments"]) + 1))
    words = [w for s in pieces["segments"] for w in s["words"]]
    assert all(s["start"] - 0.01 <= w["start"] for s in pieces["segments"] for w in s["words"])
    assert words[-1]["end"] > 80
    # Deterministic now: 3 words of 176 differ, inside the second piece, not at a cut; a bad
    # cut would lose or double part of a sentence (each copy is 22 words, 12.5 %).
    assert word_error_rate(reference, pieces["text"]) <= 0.15
    assert abs(len(normalise(pieces["text"])) - len(normalise(reference))) <= 0.04 * len(normalise(reference))
