"""How a fanned-out job's pieces are put back, and its options: pure logic (the routing: test_plan.py)."""

from __future__ import annotations

import pytest

from worker.pipeline import errors
from worker.pipeline.errors import ConfigError, InvalidOptionsError
from worker.pipeline.options import parse_options
from worker.pipeline.segments import join_text, shifted
from worker.pipeline.settings import Settings
from worker.tasks.fanout import _raise_piece_error


@pytest.mark.parametrize("value", ["30", "-1", "x"])
def test_a_bad_fanout_setting_names_the_variable(value):
    with pytest.raises(ConfigError, match="ASR_FANOUT_SECONDS"):
        Settings.from_env({"ASR_FANOUT_SECONDS": value})


@pytest.mark.parametrize("value", [5, -1, "60", True, 10**6])
def test_a_bad_fanout_option_is_refused(value):
    with pytest.raises(InvalidOptionsError, match="fanout_seconds"):
        parse_options({"fanout_seconds": value})


def test_fanout_seconds_is_not_passed_to_the_decoder():
    assert "fanout_seconds" not in parse_options({"fanout_seconds": 120}).to_kwargs(5)


def test_a_pieces_times_move_into_the_file_and_stay_inside_the_piece():
    segment = {"start": 1.0, "end": 61.2, "words": [{"start": 59.0, "end": 61.2, "word": " end"}]}
    moved = shifted(segment, 120.0, until=180.5)
    assert (moved["start"], moved["end"]) == (121.0, 180.5)
    assert (moved["words"][0]["start"], moved["words"][0]["end"]) == (179.0, 180.5)
    assert segment["start"] == 1.0, "the piece's own data is left alone"
    assert shifted(segment, 0.25)["end"] == 61.45, "no clamp unless asked"


def test_texts_join_with_one_space_and_empty_ones_are_left_out():
    assert join_text([" And so", "", "my fellow Americans"]) == " And so my fellow Americans"


def test_a_failed_piece_raises_its_own_error_type_with_where():
    piece = {
        "index": 2,
        "start": 120.0,
        "end": 180.0,
        "error": {"type": "AudioNotFoundError", "message": "gone"},
    }
    with pytest.raises(errors.AudioNotFoundError, match=r"gone \(piece 3 of 5, 120.0-180.0 s\)"):
        _raise_piece_error(piece, 5)
    piece["error"]["type"] = "SomethingElse"
    with pytest.raises(errors.ASRError):
        _raise_piece_error(piece, 5)
