from __future__ import annotations

from evaluation.scoring import errors, normalise, word_error_rate


def test_word_error_rate_ignores_case_and_punctuation():
    assert word_error_rate("And so, my fellow Americans.", "and so my fellow americans") == 0.0


def test_word_error_rate_counts_substitutions_insertions_and_deletions():
    assert word_error_rate("a b c d", "a x c d") == 0.25
    assert word_error_rate("a b c d", "a b c d e") == 0.25
    assert word_error_rate("a b c d", "a c d") == 0.25
    assert word_error_rate("a b", "") == 1.0


def test_the_english_normaliser_reads_written_and_spoken_forms_alike():
    # The eval references spell "mister" where Whisper writes "Mr."
    assert word_error_rate("and mister john dashwood", "And Mr. John Dashwood") == 0.0
    assert normalise("i have [adif] a cold <VOCNOISE> yeah") == normalise("I have a cold. Yeah")


def test_errors_add_up_across_files():
    total = errors("a b c d", "a x c d") + errors("e f", "e f g")
    assert (total.substitutions, total.insertions, total.words) == (1, 1, 6)
    assert total.wer == 2 / 6
