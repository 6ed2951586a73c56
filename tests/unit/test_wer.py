from __future__ import annotations

from tests.conftest import word_error_rate


def test_word_error_rate_ignores_case_and_punctuation():
    assert word_error_rate("And so, my fellow Americans.", "and so my fellow americans") == 0.0


def test_word_error_rate_counts_substitutions_insertions_and_deletions():
    assert word_error_rate("a b c d", "a x c d") == 0.25
    assert word_error_rate("a b c d", "a b c d e") == 0.25
    assert word_error_rate("a b c d", "a c d") == 0.25
    assert word_error_rate("a b", "") == 1.0
