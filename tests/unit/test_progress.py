"""ProgressReporter: throttled PROGRESS with the text heard so far, and the deadline."""

from __future__ import annotations

import pytest

from worker.pipeline.errors import TranscriptionTimeoutError
from worker.pipeline.progress import ProgressReporter


def test_each_published_progress_carries_the_text_heard_so_far():
    published = []
    report = ProgressReporter(lambda done, total, heard: published.append((done, total, heard)), None)
    report(0.0, 30.0, force=True)
    report(10.0, 30.0, heard=" And so, my fellow Americans")
    report(10.5, 30.0, heard=" ask not")  # too soon and too small a step: not published ...
    report(30.0, 30.0, heard=" what your country can do for you.")
    assert published == [
        (0.0, 30.0, ""),
        (10.0, 30.0, "And so, my fellow Americans"),
        # ... but its text is not lost
        (30.0, 30.0, "And so, my fellow Americans ask not what your country can do for you."),
    ]


def test_the_deadline_stops_the_job():
    report = ProgressReporter(None, deadline=-1.0)
    with pytest.raises(TranscriptionTimeoutError):
        report(1.0, 10.0)
