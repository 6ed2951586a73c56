"""A private Redis and a real prefork worker (2 children, the real tiny.en model) for the session.

Shared helpers live in :mod:`tests.helpers`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from producer import Client
from producer.local import LocalStack
from tests.helpers import audio_file, worker_stack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here needs real services: ``-m "not integration"`` leaves them all out."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server_binary: str) -> Iterator[LocalStack]:
    with worker_stack(tmp_path_factory, "worker") as running:
        yield running


@pytest.fixture()
def client(stack: LocalStack) -> Iterator[Client]:
    with Client(stack.url, stack.url) as c:
        yield c


@pytest.fixture(scope="module")
def from_disk(stack: LocalStack) -> dict[str, Any]:
    """jfk.flac transcribed from disk by ``stack``'s worker: what a URL job of the same audio must equal.

    A module with its own worker overrides ``stack`` (and so ``client`` and this).
    """
    with Client(stack.url, stack.url) as c:
        return c.transcribe(audio_file("jfk.flac"), timeout=120)
