"""A private Redis and a real prefork worker (2 children, the real tiny.en model) for the session.

Shared helpers live in :mod:`tests.helpers`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from producer import Client
from producer.local import LocalStack
from tests.helpers import worker_stack


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
