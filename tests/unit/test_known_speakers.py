"""Known speakers: the option's checks, the name matching, the API's form fields, the CLI flag (no model)."""

from __future__ import annotations

import base64
import importlib.util

import numpy as np
import pytest

from worker.pipeline.diarization import Windows
from worker.pipeline.errors import InvalidOptionsError
from worker.pipeline.options import parse_options
from worker.pipeline.speakers import label_segments, speaker_name, speakers_summary

needs_scipy = pytest.mark.skipif(
    importlib.util.find_spec("scipy") is None,
    reason="scipy not installed: pip install -r requirements-diarization.txt",
)


def test_known_speakers_option_is_checked() -> None:
    options = parse_options(
        {"diarize": True, "known_speakers": {" Ann ": "/refs/ann.wav", "Bo": "s3://b/bo.wav"}}
    )
    assert options.known_speakers == (("Ann", "/refs/ann.wav"), ("Bo", "s3://b/bo.wav"))
    assert "known_speakers" not in options.to_kwargs(5)
    for bad, words in (
        ({"known_speakers": {"Ann": "/a.wav"}}, "needs diarize=true"),
        ({"diarize": True, "known_speakers": {"  ": "/a.wav"}}, "name must be"),
        ({"diarize": True, "known_speakers": {"Ann": ""}}, "path or URL"),
        ({"diarize": True, "known_speakers": {}}, "1 to 16"),
        ({"diarize": True, "known_speakers": ["/a.wav"]}, "1 to 16"),
        ({"diarize": True, "known_speakers": {"Ann": "/a", " Ann": "/b"}}, "twice"),
    ):
        with pytest.raises(InvalidOptionsError, match=words):
            parse_options(bad)


def test_named_speakers_replace_their_labels_only() -> None:
    from worker.pipeline.diarization import Turn

    turns = [Turn(0.0, 1.0, 0), Turn(1.0, 2.0, 1)]
    segments = [
        {"id": 1, "start": 0.1, "end": 0.9, "text": "a"},
        {"id": 2, "start": 1.1, "end": 1.9, "text": "b"},
    ]
    names = {1: "Ann"}
    assert [s["speaker"] for s in label_segments(segments, turns, names=names)] == ["SPEAKER_00", "Ann"]
    assert [s["speaker"] for s in speakers_summary(turns, names)] == ["SPEAKER_00", "Ann"]
    assert speaker_name(3) == "SPEAKER_03"


def _voices() -> tuple[Windows, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    axes = np.eye(256)
    points = np.concatenate([axes[i] + rng.normal(0, 0.02, (8, 256)) for i in range(2)])
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    times = np.array([[i, i + 2.0] for i in range(16)], dtype=float)
    return Windows([(0.0, 18.0)], times, points.astype(np.float32)), np.repeat([0, 1], 8), axes


@needs_scipy
def test_a_reference_names_the_speaker_it_matches_and_no_other() -> None:
    from worker.pipeline.known_speakers import Reference, match_names

    windows, labels, axes = _voices()
    impostor = (axes[0] + axes[2] * 1.5) / np.linalg.norm(axes[0] + axes[2] * 1.5)  # 0.55 alike speaker 0

    def voice(embedding: np.ndarray) -> Reference:
        return Reference(wide=embedding, narrow=axes[5])  # narrow: heard only in narrowband speech

    references = {"Bo": voice(axes[1]), "Cy": voice(impostor)}
    assert match_names(windows, labels, references, threshold=0.8) == {1: "Bo"}
    assert match_names(windows, labels, references, threshold=0.5) == {0: "Cy", 1: "Bo"}
    # One name per speaker: two references of one voice name it once, by the closer.
    near = (axes[1] + 0.1 * axes[3]) / np.linalg.norm(axes[1] + 0.1 * axes[3])
    both = {"Bo": voice(axes[1]), "Bob": voice(near)}
    assert match_names(windows, labels, both, threshold=0.8) == {1: "Bo"}
    assert match_names(windows, labels, {}, threshold=0.8) == {}


@needs_scipy
def test_a_named_speakers_turn_keeps_the_name_only_if_its_own_windows_match() -> None:
    import dataclasses

    from worker.pipeline.diarization import Turn
    from worker.pipeline.known_speakers import Reference, name_turns

    windows, labels, axes = _voices()
    # Speaker 1's last four windows (centres 12.5-15.5 s) are another voice the clustering put
    # in its cluster; a turn from 17.6 s has no window centred in it and overlaps none.
    embeddings, times = windows.embeddings.copy(), windows.times.copy()
    embeddings[12:] = axes[2]
    times[15] = (15.0, 17.0)
    windows = dataclasses.replace(windows, times=times, embeddings=embeddings)
    turns = [Turn(0.0, 8.0, 0), Turn(8.0, 12.0, 1), Turn(12.0, 16.0, 1), Turn(17.6, 18.0, 1)]
    references = {"Bo": Reference(wide=axes[1], narrow=axes[1])}
    named, names = name_turns(windows, turns, labels, references, threshold=0.5, turn_threshold=0.5)
    assert names == {1: "Bo"}
    # The unmatched turns go to one new speaker, numbered after the two found.
    assert [t.speaker for t in named] == [0, 1, 2, 2]
    assert [(t.start, t.end) for t in named] == [(t.start, t.end) for t in turns]
    assert [s["speaker"] for s in speakers_summary(named, names)] == ["SPEAKER_00", "Bo", "SPEAKER_02"]
    # A turn check that every window passes keeps the name where the turn has a window.
    named, _ = name_turns(windows, turns, labels, references, threshold=0.5, turn_threshold=-1.0)
    assert [t.speaker for t in named] == [0, 1, 1, 2]
    # No name matched: the turns are as they were.
    assert name_turns(windows, turns, labels, {}, threshold=0.5) == (turns, {})


@needs_scipy
def test_narrowband_speech_is_matched_against_the_reference_heard_through_a_telephone_band() -> None:
    import dataclasses

    from worker.pipeline.known_speakers import MATCH_THRESHOLDS, Reference, match_names

    windows, labels, axes = _voices()
    references = {"Bo": Reference(wide=axes[7], narrow=axes[1])}
    assert match_names(windows, labels, references) == {}  # wideband: the studio voice is not Bo's
    narrow = dataclasses.replace(windows, narrowband=True)
    assert match_names(narrow, labels, references) == {1: "Bo"}
    assert set(MATCH_THRESHOLDS) == {"wide", "narrow"}


@needs_scipy
def test_the_telephone_band_keeps_speech_frequencies_and_drops_the_rest() -> None:
    from worker.pipeline.known_speakers import telephone_band

    t = np.arange(16000) / 16000
    tone = lambda hz: np.sin(2 * np.pi * hz * t).astype(np.float32)  # noqa: E731
    level = lambda a: float(np.sqrt(np.mean(a[2000:-2000] ** 2)))  # noqa: E731
    assert level(telephone_band(tone(1000))) > 0.6  # a sine's RMS is 0.707
    assert level(telephone_band(tone(6000))) < 0.01
    assert level(telephone_band(tone(100))) < 0.1
    assert len(telephone_band(tone(1000))) == 16000


def _wav_data_url(seconds: float = 3.0) -> str:
    import io
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\0\0" * int(16000 * seconds))
    return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_api_known_speaker_fields_are_checked() -> None:
    from producer.api.errors import ApiError
    from producer.api.references import known_speakers

    url = _wav_data_url()
    fields = {"known_speaker_names[]": ["agent"], "known_speaker_references[]": [url]}
    [(name, audio, suffix)] = known_speakers(fields, diarized=True)
    assert (name, suffix) == ("agent", ".wav") and audio.startswith(b"RIFF")
    assert known_speakers({}, diarized=False) == []
    for bad, diarized, words in (
        (fields, False, "diarized_json"),
        (
            {"known_speaker_names[]": ["a", "b"], "known_speaker_references[]": [url]},
            True,
            "2 known_speaker_names",
        ),
        ({"known_speaker_names[]": [" "], "known_speaker_references[]": [url]}, True, "empty"),
        ({"known_speaker_names[]": ["a"], "known_speaker_references[]": ["/etc/passwd"]}, True, "data URL"),
        (
            {"known_speaker_names[]": ["a"], "known_speaker_references[]": ["data:audio/wav;base64,@@"]},
            True,
            "base64",
        ),
        (
            {"known_speaker_names[]": list("abcde"), "known_speaker_references[]": [url] * 5},
            True,
            "at most 4",
        ),
    ):
        with pytest.raises(ApiError, match=words) as caught:
            known_speakers(bad, diarized=diarized)
        assert caught.value.status == 400


def test_cli_known_speaker_flag() -> None:
    import argparse

    from producer.cli.submit import _known_speaker

    assert _known_speaker(" Ann = /refs/ann.wav") == ("Ann", "/refs/ann.wav")
    for bad in ("Ann", "=x.wav", "Ann="):
        with pytest.raises(argparse.ArgumentTypeError):
            _known_speaker(bad)
