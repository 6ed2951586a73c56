"""A private Redis and a real prefork worker (2 children, the real tiny.en model) for the session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from producer import Client
from producer.local import LocalStack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server_binary: str) -> Iterator[LocalStack]:
    logs = tmp_path_factory.mktemp("worker")
    env = {"ASR_CACHE_DIR": str(logs / "cache")}
    with LocalStack(concurrency=2, env=env, log_path=logs / "worker.log") as running:
        yield running


@pytest.fixture()
def client(stack: LocalStack) -> Iterator[Client]:
    c = Client(stack.url, stack.url)
    yield c
    c.close()


def worker_log(stack: LocalStack) -> str:
    return Path(stack.log_path).read_text(errors="replace")
