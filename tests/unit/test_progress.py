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


class _ChangingBackend:
    """A result backend whose stored state moves on at each read, as a running job's does."""

    def __init__(self, *metas: dict) -> None:
        self.metas = list(metas)

    def get_task_meta(self, task_id, cache=True):
        return self.metas.pop(0) if len(self.metas) > 1 else self.metas[0]


def test_a_job_s_progress_is_one_read_of_state_and_meta():
    from types import SimpleNamespace

    from producer.job import Job

    started = {"status": "STARTED", "result": {"pid": 7, "hostname": "celery@node"}}
    progress = {"status": "PROGRESS", "result": {"seconds_done": 3.0, "seconds_total": 96.0, "percent": 3.1}}
    # Read apart, the STARTED meta would pass for progress once the state reads PROGRESS.
    job = Job(
        "id-1",
        "/audio.wav",
        SimpleNamespace(app=SimpleNamespace(backend=_ChangingBackend(started, progress))),
    )
    assert job.progress is None
    assert job.progress == progress["result"]
