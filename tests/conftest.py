"""Shared test helpers: paths to real audio, word error rate, a private stack."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluation.scoring import normalise, word_error_rate

__all__ = ["ROOT", "audio_file", "normalise", "references", "word_error_rate"]

ROOT = Path(__file__).resolve().parent.parent
SHARED_AUDIO = ROOT.parent / "shared" / "audio"
SAMPLES = ROOT / "samples"


def audio_file(name: str) -> Path:
    """A real recording: the shared copy when it is beside the checkout, else the shipped sample."""
    for folder in (SHARED_AUDIO, SAMPLES, ROOT / "tests" / "data"):
        if (folder / name).is_file():
            return folder / name
    pytest.skip(f"{name} is not available")


def references() -> dict[str, dict[str, object]]:
    path = SHARED_AUDIO / "references.json"
    if not path.is_file():
        path = ROOT / "tests" / "data" / "references.json"
    return json.loads(path.read_text())


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
