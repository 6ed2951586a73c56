"""Progress of a running job: throttled ``PROGRESS`` states, and the job's deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from asr_protocol.states import PROGRESS
from worker.pipeline.errors import TranscriptionTimeoutError

__all__ = ["PROGRESS", "PROGRESS_INTERVAL", "ProgressReporter", "progress_meta"]

#: At most one progress write to the result backend per this many seconds ...
PROGRESS_INTERVAL = 0.5
#: ... unless the job moved on by this share of its audio since the last write: the
#: batched pipeline yields a batch's segments in one burst, and its last ones count.
PROGRESS_STEP = 0.05

#: Stores one ``PROGRESS`` meta dict (from :func:`progress_meta`) for the job: seconds done, of
#: how many, and the text heard so far (what the HTTP API streams while the job runs).
Publish = Callable[[float, float, str], None]


def progress_meta(done: float, total: float, **extra: Any) -> dict[str, Any]:
    """The ``PROGRESS`` state's meta: seconds of audio done, of how many, and the percentage."""
    percent = round(100.0 * done / total, 1) if total > 0 else 100.0
    return {"seconds_done": round(done, 2), "seconds_total": round(total, 2), "percent": percent, **extra}


class ProgressReporter:
    """Called with (seconds_done, seconds_total, heard=text) as segments come out; publishes the
    progress and the text so far, and enforces the deadline.

    Args:
        publish: stores the progress; called at most once per :data:`PROGRESS_INTERVAL`
            unless a report is forced. ``None`` only enforces the deadline.
        deadline: seconds the work may take from now, or ``None``.
    """

    def __init__(self, publish: Publish | None, deadline: float | None) -> None:
        self._publish = publish
        self._last = 0.0
        self._last_done = 0.0
        self._started = time.monotonic()
        self._deadline = deadline
        self._heard: list[str] = []

    def __call__(self, done: float, total: float, *, force: bool = False, heard: str = "") -> None:
        now = time.monotonic()
        if self._deadline is not None and now - self._started > self._deadline:
            raise TranscriptionTimeoutError(
                f"job ran past its deadline of {self._deadline:.0f} s for {total:.0f} s of audio "
                "(ASR_TIMEOUT_BASE + ASR_TIMEOUT_PER_AUDIO_SECOND x duration)"
            )
        if self._publish is None:
            return
        if heard.strip():
            self._heard.append(heard.strip())
        recent = now - self._last < PROGRESS_INTERVAL
        if not force and recent and done - self._last_done < PROGRESS_STEP * total:
            return
        self._last, self._last_done = now, done
        self._publish(done, total, " ".join(self._heard))
