"""Wait for many jobs at once, drawing a progress bar per job from its PROGRESS state."""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from typing import Any

from producer.client import BrokerUnavailableError, Job, JobTimeoutError, TranscriptionFailed

__all__ = ["Outcome", "wait_with_progress"]

#: A job's end: its result, or why there is none.
Outcome = dict[str, Any] | TranscriptionFailed | JobTimeoutError


def _bars(jobs: Sequence[Job], show: bool) -> list[Any]:
    if not show:
        return []
    from tqdm import tqdm

    # tqdm draws nothing on a terminal that reports a 0x0 size (some ptys, CI
    # consoles); shutil falls back to $COLUMNS/$LINES, then 80x24.
    size = shutil.get_terminal_size()
    width, height = size.columns or 80, max(size.lines or 24, len(jobs) + 1)
    return [
        tqdm(
            total=100.0,
            desc=job.path[-40:],
            position=i,
            unit="%",
            ncols=width,
            nrows=height,
            bar_format="{desc} {bar} {n:5.1f}% {postfix}",
        )
        for i, job in enumerate(jobs)
    ]


def wait_with_progress(
    jobs: Sequence[Job], *, timeout: float | None, show: bool, interval: float = 0.25
) -> list[Outcome]:
    """Poll every unfinished job until all end or ``timeout`` passes.

    Raises:
        BrokerUnavailableError: the result backend cannot be reached.
    """
    import redis

    deadline = None if timeout is None else time.monotonic() + timeout
    outcomes: list[Outcome | None] = [None] * len(jobs)
    bars = _bars(jobs, show)
    try:
        while any(o is None for o in outcomes):
            for i, job in enumerate(jobs):
                if outcomes[i] is not None:
                    continue
                if job.ready():
                    try:
                        outcomes[i] = job.result(timeout=0)
                    except TranscriptionFailed as failure:
                        outcomes[i] = failure
                    if bars:
                        bars[i].n = 100.0
                        bars[i].set_postfix_str("done" if isinstance(outcomes[i], dict) else "FAILED")
                elif bars:
                    progress = job.progress
                    if progress:
                        bars[i].n = float(progress["percent"])
                    bars[i].set_postfix_str(job.state.lower())
            if deadline is not None and time.monotonic() >= deadline:
                for i, job in enumerate(jobs):
                    if outcomes[i] is None:
                        outcomes[i] = JobTimeoutError(
                            f"job {job.id} ({job.path}) did not end within {timeout:g} s"
                        )
                break
            if any(o is None for o in outcomes):
                time.sleep(interval)
    except redis.RedisError as exc:
        raise BrokerUnavailableError(f"lost the result backend: {exc}") from None
    finally:
        for bar in bars:
            bar.close()
    return [o for o in outcomes if o is not None]
