"""Sentence-like segments from word timings, sized for subtitles."""

from __future__ import annotations

from worker.pipeline.segments import (
    MAX_SEGMENT_CHARS,
    MAX_SEGMENT_SECONDS,
    Run,
    Word,
    build_segments,
    in_time_order,
)


def _words(text: str, start: float = 0.0, step: float = 0.4, pauses: dict[int, float] | None = None) -> Run:
    words, at = [], start
    for i, token in enumerate(text.split()):
        at += (pauses or {}).get(i, 0.0)
        words.append(Word(at, at + step - 0.05, f" {token}", 0.9))
        at += step
    return Run(tuple(words), -0.2, 0.01)


def test_a_sentence_end_closes_a_segment():
    segments = build_segments([_words("Hello there, my friend. How are you today?")], keep_words=False)
    assert [s["text"] for s in segments] == ["Hello there, my friend.", "How are you today?"]
    assert [s["id"] for s in segments] == [1, 2]
    assert all("words" not in s for s in segments)


def test_a_short_sentence_joins_the_next():
    segments = build_segments([_words("Yes. I think that is right.")], keep_words=False)
    assert [s["text"] for s in segments] == ["Yes. I think that is right."]


def test_a_pause_closes_a_segment():
    segments = build_segments([_words("one two three four five six", pauses={3: 1.2})], keep_words=False)
    assert [s["text"] for s in segments] == ["one two three", "four five six"]


def test_no_segment_passes_the_subtitle_limits():
    text = " ".join(f"word{i}," if i % 7 == 6 else f"word{i}" for i in range(80))
    segments = build_segments([_words(text)], keep_words=True)
    assert all(s["end"] - s["start"] <= MAX_SEGMENT_SECONDS for s in segments)
    assert all(len(s["text"]) <= MAX_SEGMENT_CHARS for s in segments)
    # Every word is kept once, in order, and inside its segment's times.
    words = [w["word"].strip() for s in segments for w in s["words"]]
    assert words == text.split()
    assert all(s["start"] <= w["start"] and w["end"] <= s["end"] for s in segments for w in s["words"])
    # Long runs are cut after a clause where there is one.
    assert sum(s["text"].endswith(",") for s in segments) >= len(segments) - 2


def test_segments_keep_their_runs_scores_and_never_span_two_runs():
    first = _words("the first window ends here")
    second = Run(_words("and the second begins", start=10.0).words, -0.7, 0.3)
    segments = build_segments([first, second], keep_words=False)
    assert [s["text"] for s in segments] == ["the first window ends here", "and the second begins"]
    assert (segments[1]["avg_logprob"], segments[1]["no_speech_prob"]) == (-0.7, 0.3)
    assert segments[1]["start"] == 10.0


def test_a_run_read_again_inside_another_splits_it_and_segments_stay_in_time_order():
    # The first pass skipped "she called his name" in the middle of its window; read again, its
    # words go between the words around it, with their own scores.
    first = _words("It was late. The door was shut.", pauses={3: 4.0})
    skipped = first.words[2].end + 0.5
    again = Run(_words("She called his name.", start=skipped).words, -0.5, 0.2)
    ordered = in_time_order([first, again])
    assert [run.avg_logprob for run in ordered] == [-0.2, -0.5, -0.2]
    word_starts = [w.start for run in ordered for w in run.words]
    assert word_starts == sorted(word_starts) and len(word_starts) == 11
    assert [s["text"] for s in build_segments(ordered, keep_words=False)] == [
        "It was late.",
        "She called his name.",
        "The door was shut.",
    ]
