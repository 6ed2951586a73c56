"""Speaker labels in txt, srt, vtt and rttm, checked with real parsers (srt, webvtt-py)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import srt
import webvtt

from asr_protocol.formats import render

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture
def labelled() -> dict[str, Any]:
    result = json.loads((DATA / "jfk_result.json").read_text())
    result = copy.deepcopy(result)
    for segment, speaker in zip(result["segments"], ["SPEAKER_00", "SPEAKER_01"], strict=False):
        segment["speaker"] = speaker
    return result


def test_txt_prefixes_each_line_with_its_speaker(labelled: dict[str, Any]) -> None:
    lines = render(labelled, "txt").splitlines()
    assert lines == [f"{s['speaker']}: {s['text']}" for s in labelled["segments"]]


def test_srt_cues_carry_the_speaker(labelled: dict[str, Any]) -> None:
    cues = list(srt.parse(render(labelled, "srt", max_line_width=10_000)))
    assert [c.content for c in cues] == [f"[{s['speaker']}] {s['text']}" for s in labelled["segments"]]
    assert [c.start.total_seconds() for c in cues] == [s["start"] for s in labelled["segments"]]


def test_vtt_voice_spans_name_the_speaker(labelled: dict[str, Any], tmp_path: Path) -> None:
    captions = webvtt.from_string(render(labelled, "vtt", max_line_width=30))
    assert {c.voice for c in captions} == {"SPEAKER_00", "SPEAKER_01"}
    first = [c for c in captions if c.voice == "SPEAKER_00"]
    assert " ".join(c.text.replace("\n", " ") for c in first) == labelled["segments"][0]["text"]


def test_rttm_lines_are_speaker_turns(labelled: dict[str, Any]) -> None:
    lines = [line.split() for line in render(labelled, "rttm").splitlines()]
    assert [(p[0], p[1], p[7]) for p in lines] == [
        ("SPEAKER", "jfk", "SPEAKER_00"),
        ("SPEAKER", "jfk", "SPEAKER_01"),
    ]
    for parts, segment in zip(lines, labelled["segments"], strict=True):
        assert len(parts) == 10
        assert float(parts[3]) == pytest.approx(segment["start"], abs=1e-3)
        assert float(parts[3]) + float(parts[4]) == pytest.approx(segment["end"], abs=1e-3)


def test_rttm_joins_touching_segments_of_one_speaker(labelled: dict[str, Any]) -> None:
    for segment in labelled["segments"]:
        segment["speaker"] = "SPEAKER_00"
    lines = render(labelled, "rttm").splitlines()
    assert len(lines) == 1


def test_rttm_needs_speaker_labels() -> None:
    result = json.loads((DATA / "jfk_result.json").read_text())
    with pytest.raises(ValueError, match="diarize=True"):
        render(result, "rttm")
