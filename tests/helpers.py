"""The one place for what tests share: worker stacks, running the CLI, and bounded waits."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest

from producer.local import LocalStack

ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float, what: str, *, interval: float = 0.05) -> T:
    """Call ``check`` until it returns something true and return that; fail after ``timeout`` s.

    Raises:
        AssertionError: naming ``what`` did not happen in time.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} (waited {timeout:g} s)")
        time.sleep(interval)


def never(check: Callable[[], object], seconds: float, what: str, *, interval: float = 0.05) -> None:
    """Poll ``check`` for ``seconds``; fail as soon as it returns something true.

    For the claims that something does not happen: a bounded poll that fails fast,
    never a bare sleep followed by one look.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert not check(), what
        time.sleep(interval)


@contextmanager
def worker_stack(tmp_path_factory: pytest.TempPathFactory, name: str, **env: str) -> Iterator[LocalStack]:
    """A private Redis and a 2-child worker with ``env``; its log and model cache under a temp ``name``."""
    logs = tmp_path_factory.mktemp(name)
    env = {"ASR_CACHE_DIR": str(logs / "cache"), **env}
    with LocalStack(concurrency=2, env=env, log_path=logs / "worker.log") as running:
        yield running


def run_module(
    module: str, *args: str, redis_url: str | None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m module args`` as a user would, against ``redis_url`` (None: no Redis configured)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def worker_log(stack: LocalStack) -> str:
    return Path(stack.log_path).read_text(errors="replace")


def wait_for_log(stack: LocalStack, line: str, timeout: float = 60, what: str | None = None) -> str:
    """The worker's log once it holds ``line``."""

    def holding() -> str:
        log = worker_log(stack)
        return log if line in log else ""

    return wait_until(
        holding,
        timeout,
        what or f"the worker never logged {line!r}",
        interval=0.1,
    )
