"""Cutting long audio into pieces in its pauses (pure logic on synthetic signals)."""

from __future__ import annotations

import itertools

import numpy as np

from worker.pipeline.speech import split_points

RATE = 16000


def _speech_with_pauses(seconds: float, pauses_at: list[float]) -> np.ndarray:
    rng = np.random.default_rng(1)
    audio = (rng.standard_normal(int(seconds * RATE)) * 0.3).astype(np.float32)
    for at in pauses_at:
        audio[int(at * RATE) : int((at + 0.5) * RATE)] = 0.0
    return audio


def test_short_audio_and_zero_limit_stay_whole():
    audio = np.ones(10 * RATE, dtype=np.float32)
    assert split_points(audio, 60) == [(0, len(audio))]
    assert split_points(audio, 0) == [(0, len(audio))]


def test_pieces_cover_the_audio_without_gaps_and_respect_the_limit():
    audio = _speech_with_pauses(1000, [])
    bounds = split_points(audio, 120)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(audio)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    assert all(end - start <= 120 * RATE for start, end in bounds)
    assert len(bounds) >= 1000 // 120


def test_cuts_land_in_the_pauses():
    # Pauses at 100 s and 195 s, inside the last 30 s before each 120 s limit.
    audio = _speech_with_pauses(300, [100.0, 195.0])
    bounds = split_points(audio, 120)
    cuts = [end / RATE for _, end in bounds[:-1]]
    assert 100.0 <= cuts[0] <= 100.5
    assert 195.0 <= cuts[1] <= 195.5
