"""The coverage check: speech without words is found, decoded again, or reported."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest

from tests.helpers import audio_file
from worker.pipeline.audio import SAMPLE_RATE, decode
from worker.pipeline.decoding import (
    LONGEST_WORD_SECONDS,
    _bounds,
    _replaced,
    _word,
    batch_for,
    fill_gaps,
    heard_spans,
)
from worker.pipeline.segments import Run
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


# The case a fan-out test caught (a 46 s piece of real speech, tiny.en): the batched pass heard
# "And so my fellow Americans | your country can do for you, | The horizon seems ..." and lost
# "ask not what" and "ask what you can do for your country". These are its real timings.
_HEARD = [
    (30.94, 31.70, "And", 0.65),
    (31.70, 32.06, "so", 0.97),
    (32.06, 32.44, "my", 0.52),
    (32.44, 32.76, "fellow", 1.00),
    (32.76, 33.26, "Americans", 0.88),
    (36.70, 37.02, "your", 0.98),
    (37.02, 37.34, "country", 1.00),
    (37.34, 37.76, "can", 0.99),
    (37.76, 38.00, "do", 1.00),
    (38.00, 38.26, "for", 0.99),
    (38.26, 39.28, "you,", 0.99),
    (40.13, 40.87, "The", 0.04),
    (40.87, 43.91, "horizon", 0.93),
    (43.91, 44.45, "seems", 0.99),
]
_VAD = [(31.32, 33.42), (34.1, 34.9), (34.9, 35.53), (36.25, 38.82), (39.03, 41.67), (43.35, 45.77)]


def _words(rows=_HEARD):
    return [_word(SimpleNamespace(start=a, end=b, word=w, probability=p)) for a, b, w, p in rows]


def test_a_phrase_the_vad_splits_at_short_pauses_is_one_gap():
    # "ask not | what": 0.8 s and 0.63 s of speech, each under a second, one phrase of 1.43 s.
    heard = [(w.start, w.end) for w in _words()]
    assert (34.1, 35.53) in uncovered(_VAD, heard)
    # Parts with a heard word between them stay apart: each is a breath.
    assert uncovered([(0.0, 0.6), (0.6, 1.2)], [(0.55, 0.65)], slack=0.0) == []


def test_a_word_stretched_over_skipped_speech_keeps_its_end_and_an_unsure_word_is_not_heard():
    words = _words()
    horizon = next(w for w in words if w.word == "horizon")
    assert (horizon.start, horizon.end) == (43.91 - LONGEST_WORD_SECONDS, 43.91)
    heard = heard_spans(words)
    assert (40.13, 40.87) not in heard  # "The", probability 0.04
    # "ask what you can do for your country" (39.3-41.7) is found missing now.
    assert any(start <= 40.5 <= end for start, end in uncovered(_VAD, heard))


def test_a_re_read_adds_words_between_the_heard_ones_not_only_inside_the_vad_stretch():
    # The gap's speech starts at 34.1, but the lost "ask" starts at 33.3: the re-read may add
    # words from the last heard word before the gap to the first after it.
    heard = heard_spans(_words())
    assert _bounds([(34.1, 35.53)], heard) == [(33.26, 36.53)]
    assert _bounds([(34.1, 35.53)], [(33.0, 33.26), (35.9, 36.2)]) == [(33.26, 35.9)]
    # Two gaps with nothing heard between them share that stretch at its middle.
    assert _bounds([(10.0, 12.0), (12.6, 14.0)], []) == [(9.0, 12.3), (12.3, 15.0)]


def test_unsure_words_where_a_re_read_found_words_are_replaced_sure_ones_kept():
    first = Run(tuple(_words()), -0.3, 0.01)
    again = Run(tuple(_words([(39.3, 39.7, "ask", 0.9), (40.9, 41.7, "country.", 0.9)])), -0.2, 0.01)
    kept = [w.word for run in _replaced([first], [again]) for w in run.words]
    assert "The" not in kept and kept == [w.word for w in _words() if w.word != "The"]
    assert _replaced([first], []) == [first]
