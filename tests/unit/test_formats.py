"""Output writers, checked with real subtitle parsers on a real transcription of jfk.flac."""

from __future__ import annotations

import copy
import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
import srt
import webvtt

from asr_protocol.formats import FORMATS, render, write

DATA = Path(__file__).resolve().parents[1] / "data"
NO_WORDS = "result has no word timestamps; transcribe with word_timestamps=True"
LONG_WORD = "Supercalifragilisticexpialidocious"  # longer than any line width used below

#: A line width no segment reaches: one cue of one line per segment (a width alone never splits cues).
UNWRAPPED = 10_000


def load(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


@pytest.fixture
def jfk() -> dict[str, Any]:
    """faster-whisper tiny.en on jfk.flac, beam 5, with word timestamps."""
    return load("jfk_result.json")


@pytest.fixture
def jfk_no_words() -> dict[str, Any]:
    """The same transcription without word timestamps."""
    return load("jfk_result_nowords.json")


def ms(seconds: float) -> int:
    return int(seconds * 1000 + 0.5)


def srt_cues(text: str) -> list[tuple[int, int, str]]:
    return [
        (s.start // srt.timedelta(milliseconds=1), s.end // srt.timedelta(milliseconds=1), s.content)
        for s in srt.parse(text)
    ]


def vtt_cues(text: str) -> list[tuple[int, int, str]]:
    # webvtt-py's cue.start_in_seconds truncates to whole seconds; Timestamp keeps milliseconds.
    # cue.raw_text keeps markup (<u>) and entities; cue.text drops tags but keeps entities.
    return [
        (c.start_time.in_milliseconds(), c.end_time.in_milliseconds(), c.raw_text)
        for c in webvtt.from_string(text).captions
    ]


def synthetic(*, words: bool, start: float = 10.0, end: float = 30.0) -> dict[str, Any]:
    """One long segment; its word times leave gaps, like real ones do."""
    text = (
        f"Ladies and gentlemen, the quarterly numbers are in and {LONG_WORD} is the only word "
        "that describes them, so let us walk through every region one by one."
    )
    segment: dict[str, Any] = {"id": 1, "start": start, "end": end, "text": text}
    if words:
        tokens = re.findall(r"\s*\S+", text)
        step = (end - start) / len(tokens)
        segment["words"] = [
            {"start": start + i * step, "end": start + (i + 0.8) * step, "word": tok, "probability": 0.9}
            for i, tok in enumerate(tokens)
        ]
    return {"audio_path": "/audio/q3 review.wav", "text": text, "segments": [segment]}


# Real fixture round-trips through real parsers.


@pytest.mark.parametrize("fixture", ["jfk_result.json", "jfk_result_nowords.json"])
def test_srt_round_trips_segment_times_and_texts(fixture: str) -> None:
    result = load(fixture)
    parsed = list(srt.parse(render(result, "srt", max_line_width=UNWRAPPED)))
    assert [s.index for s in parsed] == list(range(1, len(result["segments"]) + 1))
    assert srt_cues(render(result, "srt", max_line_width=UNWRAPPED)) == [
        (ms(s["start"]), ms(s["end"]), s["text"]) for s in result["segments"]
    ]


@pytest.mark.parametrize("fixture", ["jfk_result.json", "jfk_result_nowords.json"])
def test_vtt_round_trips_segment_times_and_texts(fixture: str) -> None:
    result = load(fixture)
    text = render(result, "vtt", max_line_width=UNWRAPPED)
    assert text.startswith("WEBVTT\n\n")
    assert vtt_cues(text) == [(ms(s["start"]), ms(s["end"]), s["text"]) for s in result["segments"]]


def test_jfk_fixture_is_the_known_speech(jfk: dict[str, Any], jfk_no_words: dict[str, Any]) -> None:
    for result in (jfk, jfk_no_words):
        assert "ask not what your country can do for you" in result["text"]
        assert result["text"] == " ".join(s["text"] for s in result["segments"])
    assert all(s["words"] for s in jfk["segments"])
    assert not any("words" in s for s in jfk_no_words["segments"])


# Timestamps.


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "00:00:00,000"),
        (1.0, "00:00:01,000"),
        (0.0004, "00:00:00,000"),
        (59.9996, "00:01:00,000"),
        (3599.9995, "01:00:00,000"),
        (6000, "01:40:00,000"),  # past 99 minutes: hours, not a three-digit minute field
        (360000, "100:00:00,000"),
        (362439.5, "100:40:39,500"),
    ],
)
def test_timestamps(seconds: float, expected: str) -> None:
    result = {"audio_path": "a.wav", "segments": [{"start": seconds, "end": seconds + 1, "text": "hi"}]}
    srt_text, vtt_text = render(result, "srt"), render(result, "vtt")
    assert srt_text.splitlines()[1].split(" --> ")[0] == expected
    assert vtt_text.splitlines()[2].split(" --> ")[0] == expected.replace(",", ".")
    # The real parsers read the same instant back, more than 99 hours included.
    assert srt_cues(srt_text)[0][0] == vtt_cues(vtt_text)[0][0] == ms(seconds)


# Wrapping long segments.


@pytest.mark.parametrize("words", [True, False], ids=["with-words", "without-words"])
@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_wrapping_splits_long_segment_into_cues(fmt: str, words: bool) -> None:
    result = synthetic(words=words)
    segment = result["segments"][0]
    text = render(result, fmt, max_line_width=20, max_line_count=2)
    cues = srt_cues(text) if fmt == "srt" else vtt_cues(text)

    assert len(cues) > 1
    for _, _, body in cues:
        lines = body.split("\n")
        assert 1 <= len(lines) <= 2
        assert all(len(line) <= 20 or " " not in line for line in lines)
    assert any(line == LONG_WORD for _, _, body in cues for line in body.split("\n"))
    assert " ".join(body.replace("\n", " ") for _, _, body in cues) == segment["text"]
    # In order, inside the segment, tiling it without gaps or overlaps.
    assert cues[0][0] == ms(segment["start"]) and cues[-1][1] == ms(segment["end"])
    for (_, end, _), (start, _, _) in itertools.pairwise(cues):
        assert end == start
    assert all(start < end for start, end, _ in cues)


def test_wrapped_cues_split_at_word_starts() -> None:
    result = synthetic(words=True)
    starts = {w["word"].strip(): ms(w["start"]) for w in result["segments"][0]["words"]}
    cues = srt_cues(render(result, "srt", max_line_width=20, max_line_count=2))
    for start, _, body in cues[1:]:
        assert start == starts[body.split()[0]]


def test_wrapped_cues_without_words_split_in_proportion_to_characters() -> None:
    result = synthetic(words=False, start=10.0, end=30.0)
    full = result["segments"][0]["text"]
    cues = srt_cues(render(result, "srt", max_line_width=20, max_line_count=2))
    offset = 0
    for start, _, body in cues:
        assert abs(start - ms(10.0 + 20.0 * offset / len(full))) <= 1
        offset += len(body.replace("\n", " ")) + 1  # and the space before the next cue's first word


def test_wrapping_without_line_count_keeps_one_cue_per_segment(jfk: dict[str, Any]) -> None:
    cues = srt_cues(render(jfk, "srt", max_line_width=20))
    assert [(start, end) for start, end, _ in cues] == [
        (ms(s["start"]), ms(s["end"])) for s in jfk["segments"]
    ]
    assert cues[0][2].split("\n") == [
        "And so, my fellow",
        "Americans ask not",
        "what your country",
        "can do for you",
    ]


def test_wrapping_leaves_txt_and_tsv_alone(jfk: dict[str, Any]) -> None:
    for fmt in ("txt", "tsv"):
        assert render(jfk, fmt, max_line_width=10, max_line_count=1) == render(jfk, fmt)


# Word-level cues and highlighting.


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_word_level_gives_one_cue_per_word(jfk: dict[str, Any], fmt: str) -> None:
    text = render(jfk, fmt, word_level=True)
    cues = srt_cues(text) if fmt == "srt" else vtt_cues(text)
    words = [w for s in jfk["segments"] for w in s["words"]]
    assert cues == [(ms(w["start"]), ms(w["end"]), w["word"].strip()) for w in words]


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_highlight_words_underlines_each_word_in_turn(jfk: dict[str, Any], fmt: str) -> None:
    text = render(jfk, fmt, highlight_words=True, max_line_width=UNWRAPPED)
    cues = srt_cues(text) if fmt == "srt" else vtt_cues(text)
    for segment in jfk["segments"]:
        inside = [c for c in cues if re.sub("</?u>", "", c[2]) == segment["text"]]
        marked = [c for c in inside if "<u>" in c[2]]
        assert len(marked) == len(segment["words"])
        for (start, end, body), word in zip(marked, segment["words"], strict=True):
            assert (start, end) == (ms(word["start"]), ms(word["end"]))
            assert body.count("<u>") == body.count("</u>") == 1
            assert re.findall(r"<u>(.*?)</u>", body) == [word["word"].strip()]
        assert ms(segment["start"]) <= inside[0][0] and inside[-1][1] <= ms(segment["end"])
    # Every cue shows a whole segment; those without a mark fill the pauses between words.
    assert sum(len(s["words"]) for s in jfk["segments"]) < len(cues)
    assert sorted({re.sub("</?u>", "", c[2]) for c in cues}) == sorted(s["text"] for s in jfk["segments"])
    assert all(start <= end for start, end, _ in cues)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(cues))


def test_highlight_words_with_wrapping_keeps_lines(jfk: dict[str, Any]) -> None:
    cues = vtt_cues(render(jfk, "vtt", highlight_words=True, max_line_width=20, max_line_count=2))
    words = [w for s in jfk["segments"] for w in s["words"]]
    marked = [c for c in cues if "<u>" in c[2]]
    assert len(marked) == len(words)
    for _, _, body in cues:
        lines = body.replace("<u>", "").replace("</u>", "").split("\n")
        assert len(lines) <= 2 and all(len(line) <= 20 for line in lines)


@pytest.mark.parametrize("option", ["highlight_words", "word_level"])
@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_word_options_need_word_timestamps(jfk_no_words: dict[str, Any], option: str, fmt: str) -> None:
    with pytest.raises(ValueError, match=re.escape(NO_WORDS)):
        render(jfk_no_words, fmt, **{option: True})


# Validation.


def test_unknown_format_names_the_allowed_ones(jfk: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="json, txt, srt, vtt, tsv") as info:
        render(jfk, "docx")
    assert "'docx'" in str(info.value)
    assert FORMATS == ("json", "txt", "srt", "vtt", "tsv", "rttm")


@pytest.mark.parametrize("option", [{"max_line_width": 0}, {"max_line_count": -1}])
def test_bad_line_options(jfk: dict[str, Any], option: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(option))):
        render(jfk, "srt", **option)


def test_highlight_and_word_level_are_exclusive(jfk: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="cannot be combined"):
        render(jfk, "srt", highlight_words=True, word_level=True)


# txt, tsv, json.


def test_txt_one_segment_per_line(jfk: dict[str, Any]) -> None:
    assert render(jfk, "txt") == (
        "And so, my fellow Americans ask not what your country can do for you\n"
        "ask what you can do for your country.\n"
    )


def test_txt_prefixes_channel() -> None:
    result = {
        "audio_path": "call.wav",
        "segments": [
            {"start": 0.0, "end": 1.0, "text": "hello", "channel": 0},
            {"start": 1.0, "end": 2.0, "text": "hi there", "channel": "right"},
        ],
    }
    assert render(result, "txt") == "[0] hello\n[right] hi there\n"


def test_tsv_uses_integer_milliseconds(jfk: dict[str, Any]) -> None:
    assert render(jfk, "tsv") == (
        "start\tend\ttext\n"
        "0\t8060\tAnd so, my fellow Americans ask not what your country can do for you\n"
        "8060\t10500\task what you can do for your country.\n"
    )


def test_tsv_and_subtitles_flatten_tabs_and_newlines() -> None:
    result = {"audio_path": "a.wav", "segments": [{"start": 1.2344, "end": 3599.9995, "text": "a\tb\nc"}]}
    assert render(result, "tsv") == "start\tend\ttext\n1234\t3600000\ta b c\n"
    # An hour-long segment of three words: cues of at most 7 s, so one word each.
    assert [text for _, _, text in srt_cues(render(result, "srt"))] == ["a", "b", "c"]
    assert srt_cues(render(result, "srt", max_line_width=42))[0][2] == "a b c"


def test_vtt_escapes_markup_characters() -> None:
    result = {"audio_path": "a.wav", "segments": [{"start": 0.0, "end": 1.0, "text": "x < y & y --> z"}]}
    assert vtt_cues(render(result, "vtt")) == [(0, 1000, "x &lt; y &amp; y --&gt; z")]
    assert srt_cues(render(result, "srt"))[0][2] == "x < y & y --> z"


def test_json_is_the_whole_result(jfk: dict[str, Any]) -> None:
    result = copy.deepcopy(jfk)
    result["segments"][0]["text"] = "café"
    text = render(result, "json")
    assert "café" in text
    assert json.loads(text) == result


# write().


def test_write_names_file_after_audio(jfk: dict[str, Any], tmp_path: Path) -> None:
    out_dir = tmp_path / "out" / "nested"
    path = write(jfk, "srt", out_dir)
    assert path == out_dir / "jfk.srt"
    assert path.read_text(encoding="utf-8") == render(jfk, "srt")


def test_write_with_name_and_render_options(jfk: dict[str, Any], tmp_path: Path) -> None:
    path = write(jfk, "vtt", str(tmp_path), name="meeting", max_line_width=20, max_line_count=1)
    assert path == tmp_path / "meeting.vtt"
    assert path.read_text(encoding="utf-8") == render(jfk, "vtt", max_line_width=20, max_line_count=1)
    captions = webvtt.read(str(path)).captions
    assert all(len(c.text) <= 20 for c in captions)


def test_write_is_utf8(tmp_path: Path) -> None:
    result = {"audio_path": "/x/réunion.flac", "segments": [{"start": 0, "end": 1, "text": "déjà vu"}]}
    path = write(result, "txt", tmp_path)
    assert path.name == "réunion.txt"
    assert path.read_bytes() == "déjà vu\n".encode()


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_default_cues_follow_subtitle_practice_and_end_with_the_audio(jfk: dict[str, Any], fmt: str) -> None:
    # One segment of 155 characters (three lines of 42 and more), stamped past the audio's end.
    joined_text = " ".join(s["text"] for s in jfk["segments"])
    long = {"duration": 10.5, "segments": [{"id": 1, "start": 0.0, "end": 11.0, "text": joined_text}]}
    parse = srt_cues if fmt == "srt" else vtt_cues
    cues = parse(render(long, fmt))
    assert len(cues) >= 2, "a segment over two lines of 42 characters becomes several cues"
    for start, end, text in cues:
        lines = text.split("\n")
        assert len(lines) <= 2 and all(len(line) <= 42 for line in lines), text
        assert end <= 10_500 and end - start <= 7_000
    joined = " ".join(" ".join(text.split("\n")) for _, _, text in cues)
    assert joined == " ".join(s["text"] for s in jfk["segments"])


def test_channel_labels_reach_every_subtitle_cue_and_tsv_row() -> None:
    result = {
        "duration": 4.0,
        "segments": [
            {"id": 1, "start": 0.0, "end": 1.5, "text": "Hello.", "channel": "agent"},
            {"id": 2, "start": 1.0, "end": 3.0, "text": "Hi there.", "channel": "customer"},
        ],
    }
    assert [c[2] for c in srt_cues(render(result, "srt"))] == ["[agent] Hello.", "[customer] Hi there."]
    assert [c[2] for c in vtt_cues(render(result, "vtt"))] == [
        "<v agent>Hello.</v>",
        "<v customer>Hi there.</v>",
    ]
    assert render(result, "tsv").splitlines()[1:] == [
        "0\t1500\t[agent] Hello.",
        "1000\t3000\t[customer] Hi there.",
    ]


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_default_cues_last_at_most_7_s_and_start_with_the_first_word(fmt: str) -> None:
    # A slow speaker: 12 words over 12 s fit two lines of 42 characters but not 7 s on screen;
    # the segment is stamped from 0.0 while its first word starts at 6 s.
    words = [{"start": 6.0 + i, "end": 6.8 + i, "word": f" w{i}", "probability": 0.9} for i in range(12)]
    segment = {"id": 1, "start": 0.0, "end": 18.0, "text": "".join(w["word"] for w in words), "words": words}
    cues = (srt_cues if fmt == "srt" else vtt_cues)(render({"duration": 20.0, "segments": [segment]}, fmt))
    assert len(cues) == 2
    assert cues[0][0] == 6_000, "the first cue starts with the first word, not the segment's 0.0"
    assert all(end - start <= 7_000 for start, end, _ in cues), cues
    assert " ".join(text for _, _, text in cues).split() == [f"w{i}" for i in range(12)]
