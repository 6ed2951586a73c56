"""The ``model`` field -> queue mapping of the HTTP API (producer.api.models.ModelDirectory).

The workers' ``asr_info`` answer is given as data (the broadcast itself is tested in
tests/integration/test_api.py); what is checked here is the mapping alone.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from producer.api import models
from producer.api.models import ModelDirectory


def _worker(queues: list[str], model_id: str, *, loaded: bool = True) -> dict[str, Any]:
    model = {"model_id": model_id, "loaded": loaded, "multilingual": not model_id.endswith(".en")}
    return {"queues": queues, "children": [{"queues": queues, "model": model}]}


FLEET = {
    "default@a": _worker(["asr"], "tiny.en"),
    "large@b": _worker(["asr-large", "asr-large-2"], "large-v3"),
    "both@c": _worker(["asr", "asr-medium"], "medium"),
    "loading@d": _worker(["asr-turbo"], "turbo", loaded=False),
}


@pytest.fixture()
def directory(monkeypatch: pytest.MonkeyPatch) -> ModelDirectory:
    monkeypatch.setattr(models, "worker_info", lambda client, timeout: FLEET)
    return ModelDirectory(SimpleNamespace(queue="asr"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("model", "queue"),
    [
        (None, "asr"),  # no model: the default queue
        ("", "asr"),
        ("whisper-1", "asr"),  # OpenAI's name: the default queue
        ("tiny.en", "asr"),
        ("large-v3", "asr-large"),  # served on two queues: the first by name
        ("medium", "asr"),  # its worker also consumes the default queue: that one
        ("turbo", "asr"),  # still loading: not served yet
        ("no-such-model", "asr"),  # nobody serves it: the default queue
    ],
)
def test_model_picks_its_queue(directory: ModelDirectory, model: str | None, queue: str):
    assert asyncio.run(directory.queue_for(model)) == queue


def test_the_known_queues_are_the_default_then_the_served_models(directory: ModelDirectory):
    assert directory.queues() == ["asr"]  # nothing asked yet: no broadcast behind the caller's back
    asyncio.run(directory.refresh())
    assert directory.queues() == ["asr", "asr-large", "asr-large-2", "asr-medium"]
