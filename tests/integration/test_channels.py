"""Per-channel transcripts of a real stereo recording: real Redis, a real worker, the real model."""

from __future__ import annotations

import time
import wave
from pathlib import Path

import numpy as np
import pytest

from asr_protocol.formats import render
from evaluation.audio import SEQUENTIAL, write_wav
from producer import Client, TranscriptionFailed
from tests.helpers import audio_file, references, word_error_rate

pytestmark = pytest.mark.integration

STEREO = "stereo_diarization.wav"
#: tiny.en gets both channels word for word (WER 0.0, measured); 0.2 allows one
#: wrong word on the 5-word right channel.
MAX_WER = 0.2


def _write_stereo(path: Path, left: np.ndarray, right: np.ndarray) -> Path:
    frames = np.stack([left, right], axis=1)
    pcm = (np.clip(frames, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(pcm.tobytes())
    return path


def _decoded(name: str) -> np.ndarray:
    from faster_whisper.audio import decode_audio

    return decode_audio(str(audio_file(name)), sampling_rate=16000)


def test_named_channels_are_transcribed_each_on_its_own(client: Client):
    result = client.transcribe(audio_file(STEREO), channels=["agent", "customer"], timeout=120)
    refs = references()[STEREO]
    by_name = {entry["channel"]: entry for entry in result["channels"]}
    assert list(by_name) == ["agent", "customer"]
    assert word_error_rate(str(refs["left"]), by_name["agent"]["text"]) <= MAX_WER
    assert word_error_rate(str(refs["right"]), by_name["customer"]["text"]) <= MAX_WER
    assert all(entry["language"] == "en" for entry in result["channels"])

    segments = result["segments"]
    assert {s["channel"] for s in segments} == {"agent", "customer"}
    assert [s["id"] for s in segments] == list(range(1, len(segments) + 1)), "renumbered from 1"
    order = [(s["start"], ["agent", "customer"].index(s["channel"])) for s in segments]
    assert order == sorted(order), "merged by start time, then channel"
    for name in ("agent", "customer"):
        own = " ".join(s["text"] for s in segments if s["channel"] == name)
        assert own == by_name[name]["text"]
    assert result["text"] == " ".join(s["text"] for s in segments)
    assert result["duration"] == pytest.approx(5.0, abs=0.1)
    assert "channels" not in result["options"]


def test_split_labels_the_channels_0_and_1(client: Client):
    result = client.transcribe(audio_file(STEREO), channels="split", timeout=120)
    assert [entry["channel"] for entry in result["channels"]] == [0, 1]
    assert {s["channel"] for s in result["segments"]} == {0, 1}
    refs = references()[STEREO]
    assert word_error_rate(str(refs["left"]), result["channels"][0]["text"]) <= MAX_WER
    assert word_error_rate(str(refs["right"]), result["channels"][1]["text"]) <= MAX_WER


def test_without_the_option_the_channels_are_mixed_down(client: Client):
    result = client.transcribe(audio_file(STEREO), timeout=120)
    assert "channels" not in result
    assert all("channel" not in s for s in result["segments"])


def test_txt_output_prefixes_each_line_with_its_channel(client: Client):
    result = client.transcribe(audio_file(STEREO), channels=["agent", "customer"], timeout=120)
    lines = render(result, "txt").strip().splitlines()
    assert {line.split("]")[0] + "]" for line in lines} == {"[agent]", "[customer]"}
    assert any("horizon" in line for line in lines if line.startswith("[customer]"))


def test_a_mono_file_cannot_be_split(client: Client, tmp_path: Path):
    mono = write_wav(tmp_path / "mono.wav", _decoded("jfk.flac"))
    with pytest.raises(TranscriptionFailed) as caught:
        client.transcribe(mono, channels=["agent", "customer"], timeout=60)
    assert caught.value.error_type == "InvalidOptionsError"
    assert "2-channel" in caught.value.message and "has 1 channel" in caught.value.message


def test_progress_covers_both_channels(client: Client, tmp_path: Path):
    # Real speech on both sides: jfk.flac 4 times with 1 s pauses (48 s), the right side quieter.
    speech = _decoded("jfk.flac")
    pause = np.zeros(16000, dtype=np.float32)
    side = np.concatenate([speech, pause] * 4)
    stereo = _write_stereo(tmp_path / "call.wav", side, side * 0.8)
    # The sequential decoder's progress moves segment by segment; the batched pipeline
    # reports a whole batch at once, too fast to watch here.
    job = client.submit(stereo, channels="split", **SEQUENTIAL)
    seen = []
    deadline = time.monotonic() + 180
    while not job.ready() and time.monotonic() < deadline:
        if progress := job.progress:  # one read: the job may end between two
            seen.append(progress)
        time.sleep(0.05)
    result = job.result(timeout=1)
    assert result["duration"] == pytest.approx(48.0, abs=0.5)
    assert seen, "no PROGRESS state was observed"
    assert all(p["seconds_total"] == pytest.approx(96.0, abs=0.5) for p in seen), "the sum of both channels"
    done = [p["seconds_done"] for p in seen]
    assert done == sorted(done)
    assert max(done) > 48.0, f"progress went on into the second channel: {done}"
    # 4 copies x "country" twice each = 8 per channel (measured); allow a miss or two.
    assert all(entry["text"].count("country") >= 6 for entry in result["channels"])
