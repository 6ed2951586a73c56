"""Long audio: the batched pipeline at no loss of words; pieces cut in pauses for bounded memory."""

from __future__ import annotations

import pytest
from faster_whisper.audio import decode_audio

from evaluation.audio import concatenate
from evaluation.workloads import referenced_mix
from producer import Client
from producer.local import LocalStack
from tests.helpers import audio_file, normalise, references, word_error_rate
from worker.pipeline.audio import SAMPLE_RATE
from worker.pipeline.speech import split_points

pytestmark = pytest.mark.integration


def test_batched_pipeline_is_as_accurate_as_sequential_on_long_real_speech(tmp_path, client):
    # About 3 minutes of real speech with known words (jfk.flac and both channels of
    # stereo_diarization.wav in a seeded order, 1 s pauses): the "within 1 point".
    mix = tmp_path / "mix.wav"
    reference = referenced_mix(180, mix)
    batched = client.transcribe(mix, timeout=300)
    with LocalStack(concurrency=1, env={"ASR_BATCH_SIZE": "1"}, log_path=tmp_path / "w.log") as stack:
        with Client(stack.url, stack.url) as sequential_client:
            sequential = sequential_client.transcribe(mix, timeout=300)
    assert (batched["decoder"], sequential["decoder"]) == ("batched", "sequential")
    batched_wer = word_error_rate(reference, batched["text"])
    sequential_wer = word_error_rate(reference, sequential["text"])
    assert batched_wer <= sequential_wer + 0.01, (batched_wer, sequential_wer)
    starts = [s["start"] for s in batched["segments"]]
    assert starts == sorted(starts) and batched["segments"][-1]["end"] > 170, "timings span the file"
    assert all(s["end"] - s["start"] <= 30.0 for s in batched["segments"])


def test_a_short_clip_keeps_the_sequential_decoder(client):
    result = client.transcribe(audio_file("jfk.flac"), timeout=120)
    assert result["decoder"] == "sequential"


@pytest.mark.parametrize("batch_size", ["1", "8"], ids=["sequential", "batched"])
def test_long_audio_in_pieces_loses_and_doubles_no_speech_at_the_cuts(tmp_path, batch_size):
    # 8 x jfk.flac with 1 s pauses: 96 s of real speech; pieces of at most 40 s (cut near 35 s and 71 s).
    long_file = concatenate(audio_file("jfk.flac"), 8, tmp_path / "jfk_x8.wav")
    reference = " ".join([str(references()["jfk.flac"]["text"])] * 8)
    env = {"ASR_CHUNK_SECONDS": "40", "ASR_BATCH_SIZE": batch_size}
    with LocalStack(concurrency=1, env=env, log_path=tmp_path / "w.log") as stack:
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
    # The cuts fall in pauses between copies of the sentence: the words before each cut end it
    # and the words after begin the next copy, none lost and none doubled. (Elsewhere the model
    # may drop words of this repeated text - the batched decoder loses half a sentence inside
    # the second piece - which the WER bound allows; it is not a cut's doing.)
    audio = decode_audio(str(long_file), sampling_rate=SAMPLE_RATE)
    cuts = [start / SAMPLE_RATE for start, _ in split_points(audio, 40.0)[1:]]
    assert len(cuts) == 2
    sentence = normalise(str(references()["jfk.flac"]["text"])).split()
    for cut in cuts:
        before = normalise(" ".join(w["word"] for w in words if w["end"] <= cut)).split()
        after = normalise(" ".join(w["word"] for w in words if w["start"] >= cut)).split()
        assert before[-5:] == sentence[-5:] and after[:5] == sentence[:5], (cut, before[-5:], after[:5])
        assert not any(w["start"] < cut < w["end"] for w in words), f"a word spans the cut at {cut:.2f} s"
    assert word_error_rate(reference, pieces["text"]) <= 0.15
