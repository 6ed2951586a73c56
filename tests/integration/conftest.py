"""A private Redis and a real prefork worker (2 children, the real tiny.en model) for the session."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from producer import Client
from producer.local import LocalStack
from tests.conftest import ROOT

pytestmark = pytest.mark.integration


@contextmanager
def worker_stack(tmp_path_factory: pytest.TempPathFactory, name: str, **env: str) -> Iterator[LocalStack]:
    """A private Redis and a 2-child worker with ``env``; its log and model cache under a temp ``name``."""
    logs = tmp_path_factory.mktemp(name)
    env = {"ASR_CACHE_DIR": str(logs / "cache"), **env}
    with LocalStack(concurrency=2, env=env, log_path=logs / "worker.log") as running:
        yield running


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server_binary: str) -> Iterator[LocalStack]:
    with worker_stack(tmp_path_factory, "worker") as running:
        yield running


@pytest.fixture()
def client(stack: LocalStack) -> Iterator[Client]:
    with Client(stack.url, stack.url) as c:
        yield c


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
