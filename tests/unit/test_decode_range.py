"""A piece decoded by seeking holds the same samples as that stretch of the whole file."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import audio_file
from worker.pipeline.audio import decode, decode_head, decode_range


@pytest.mark.parametrize("name", ["jfk.flac", "hotwords.mp3", "stereo_diarization.wav"])
@pytest.mark.parametrize(("start", "end"), [(0.0, 3.3), (1.6, 2.8), (2.5, 3.9)])
def test_decode_range_matches_the_whole_decode(name, start, end):
    path = audio_file(name)
    whole = decode(path)[round(start * 16000) : round(end * 16000)]
    piece = decode_range(path, start, end)
    assert len(piece) == len(whole)
    # A seek restarts the resampler: a few samples differ slightly, none is shifted.
    assert float(np.abs(piece - whole).mean()) < 0.01


def test_decode_head_is_the_start_of_the_whole_decode():
    path = audio_file("hotwords.mp3")  # an MP3 whose stream starts after 0 (encoder delay)
    assert np.array_equal(decode_head(path, 3.0), decode(path)[:48000])
