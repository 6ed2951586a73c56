"""The coverage check: speech without words is found, decoded again, or reported."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest

from tests.helpers import audio_file
from worker.pipeline.audio import SAMPLE_RATE, decode
from worker.pipeline.decoding import batch_for, fill_gaps
from worker.pipeline.speech import missed_speech, speech_onset, uncovered


def test_speech_with_words_over_it_is_covered():
    assert uncovered([(0.0, 10.0)], [(0.1, 4.9), (5.2, 9.8)]) == []


def test_a_stretch_of_speech_without_words_is_a_gap():
    # One window's words forced away: 4-8 s of speech holds none.
    assert uncovered([(0.0, 10.0)], [(0.1, 3.9), (8.1, 9.9)], slack=0.0) == [(3.9, 8.1)]


def test_gaps_shorter_than_a_second_are_breaths_not_lost_speech():
    assert uncovered([(0.0, 10.0)], [(0.0, 4.0), (4.6, 10.0)], slack=0.0) == []
    assert uncovered([(0.0, 0.8)], [], slack=0.0) == []


def test_speech_before_the_first_and_after_the_last_word_counts():
    assert uncovered([(0.0, 12.0)], [(3.0, 9.0)], slack=0.0) == [(0.0, 3.0), (9.0, 12.0)]


def test_word_times_are_given_slack():
    assert uncovered([(0.0, 10.0)], [(0.0, 4.5), (5.6, 10.0)], slack=0.25) == []
    assert uncovered([(0.0, 10.0)], [(0.0, 4.5), (5.6, 10.0)], slack=0.0) == [(4.5, 5.6)]


def test_the_vad_finds_the_real_speech_a_transcript_left_out():
    audio = decode(audio_file("jfk.flac"))
    # All of the speech heard: nothing missed.
    assert missed_speech(audio, [(0.0, len(audio) / SAMPLE_RATE)]) == []
    # Nothing heard: the speech itself is missed, not the silence around it.
    missed = missed_speech(audio, [])
    assert missed and sum(end - start for start, end in missed) > 6.0
    # Digital silence holds no speech to miss.
    assert missed_speech(np.zeros(10 * SAMPLE_RATE, dtype=np.float32), []) == []


class _DeafModel:
    """A decoder that hears nothing: what a re-decode of a hopeless stretch returns."""

    def transcribe(self, audio, **kwargs):
        return iter(()), SimpleNamespace(language="en", language_probability=1.0)


def test_speech_still_without_words_is_reported_and_logged(caplog):
    audio = decode(audio_file("jfk.flac"))
    with caplog.at_level(logging.WARNING, logger="worker.pipeline.decoding"):
        found, gaps = fill_gaps(_DeafModel(), audio, [], {"beam_size": 5}, batch_size=1)  # type: ignore[arg-type]
    assert found == [] and gaps
    assert all(end - start >= 1.0 for start, end in gaps)
    assert "has no words, even decoded again" in caplog.text


@pytest.mark.parametrize("heard", [[(0.0, 11.0)]])
def test_covered_audio_is_not_decoded_again(heard):
    class _Untouchable:
        def transcribe(self, audio, **kwargs):  # pragma: no cover - the assertion is that it is not called
            raise AssertionError("decoded again although every stretch had words")

    assert fill_gaps(_Untouchable(), decode(audio_file("jfk.flac")), heard, {}) == ([], [])  # type: ignore[arg-type]


def test_speech_onset_moves_a_segment_start_past_its_quiet_lead_in() -> None:
    rng = np.random.default_rng(0)
    quiet = rng.normal(0, 0.001, 6 * SAMPLE_RATE)
    loud = rng.normal(0, 0.2, 4 * SAMPLE_RATE)
    audio = np.concatenate([quiet, loud]).astype(np.float32)
    assert speech_onset(audio, 0.0, 10.0) == pytest.approx(5.8, abs=0.11)  # 6 s less the 0.2 s pad
    assert speech_onset(audio, 5.7, 10.0) == 5.7, "a lead-in under 0.5 s is kept"
    assert speech_onset(audio, 7.0, 10.0) == 7.0, "speech from the start: unchanged"
    assert speech_onset(np.zeros(SAMPLE_RATE * 3, dtype=np.float32), 0.0, 3.0) == 0.0, "silence: unchanged"
    assert speech_onset(audio, 0.0, 10.7) == pytest.approx(5.8, abs=0.11), "a segment stamped past the end"


def test_the_first_pass_reads_a_short_file_in_several_batches_so_progress_moves() -> None:
    assert [batch_for(n, 8) for n in (1, 2, 3, 4, 6, 12, 24, 25, 100)] == [1, 1, 1, 2, 2, 4, 8, 8, 8]
    assert batch_for(4, 1) == 1
