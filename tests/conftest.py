"""Session fixtures for every test; shared helpers live in :mod:`tests.helpers`."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def redis_server_binary() -> str:
    from producer.local import find_redis_server

    try:
        return find_redis_server()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))


@pytest.fixture()
def workdir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)
