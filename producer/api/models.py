"""Which models the live workers serve, on which queues: ``GET /v1/models`` and the ``model`` field.

Asked of the fleet with the workers' ``asr_info`` command (:func:`producer.ops.worker_info`)
and kept for :data:`TTL_SECONDS`: a broadcast waits its whole timeout, since it cannot
know how many workers will answer.

``model`` picks a queue: a model id that a live worker serves goes to that worker's
queue (the default queue when one of them consumes it); ``whisper-1`` and names no
worker serves go to the default queue.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread

from producer import broker
from producer.client import Client
from producer.ops import worker_info

__all__ = ["ModelDirectory", "Served", "queue_depth", "served_models"]

TTL_SECONDS = 15.0
#: How long a refresh waits for the workers' answers.
ASK_SECONDS = 1.0


@dataclass
class Served:
    """One model the fleet serves."""

    id: str
    queues: set[str] = field(default_factory=set)
    multilingual: bool | None = None
    workers: set[str] = field(default_factory=set)


def served_models(info: dict[str, dict[str, Any]]) -> tuple[dict[str, Served], set[str]]:
    """Models (by id) and the queues they are served on, from :func:`worker_info`'s answer.

    Returns:
        ``(models, consumed)``: every loaded model, and every queue a live worker consumes.
    """
    models: dict[str, Served] = {}
    consumed: set[str] = set()
    for hostname, worker in info.items():
        consumed.update(worker.get("queues", []))
        for child in worker.get("children", []):
            model = child.get("model") or {}
            if not model.get("model_id") or not model.get("loaded", True):
                continue
            served = models.setdefault(model["model_id"], Served(model["model_id"]))
            served.queues.update(child.get("queues") or worker.get("queues", []))
            served.workers.add(hostname)
            if model.get("multilingual") is not None:
                served.multilingual = bool(model["multilingual"])
    return models, consumed


class ModelDirectory:
    """A cached view of what the fleet serves."""

    def __init__(self, client: Client, *, ttl: float = TTL_SECONDS) -> None:
        self._client = client
        self._ttl = ttl
        self._lock = asyncio.Lock()
        self._at = -float("inf")
        self._models: dict[str, Served] = {}
        self._consumed: set[str] = set()
        #: The workers that answered the last broadcast.
        self.workers: set[str] = set()

    async def refresh(self, *, max_age: float | None = None) -> None:
        """Ask the workers again when the view is older than ``max_age`` (default: the TTL)."""
        async with self._lock:
            if time.monotonic() - self._at < (self._ttl if max_age is None else max_age):
                return
            info = await anyio.to_thread.run_sync(lambda: worker_info(self._client, timeout=ASK_SECONDS))
            self._models, self._consumed = served_models(info)
            self.workers = set(info)
            self._at = time.monotonic()

    async def models(self) -> dict[str, Served]:
        await self.refresh()
        return self._models

    async def consumed(self, *, max_age: float | None = None) -> set[str]:
        """The queues live workers consume."""
        await self.refresh(max_age=max_age)
        return self._consumed

    def queues(self) -> list[str]:
        """The default queue, then the queues of every model the last refresh found (no broadcast)."""
        default = self._client.queue
        return [default, *sorted({q for m in self._models.values() for q in m.queues} - {default})]

    async def queue_for(self, model: str | None) -> str:
        """The queue a request for ``model`` goes to (see the module's docstring)."""
        default = self._client.queue
        if not model or model == "whisper-1":
            return default
        served = (await self.models()).get(model)
        if served is None or not served.queues or default in served.queues:
            return default
        return sorted(served.queues)[0]


def queue_depth(client: Client, queue: str) -> int:
    """Jobs waiting in ``queue`` (all priority levels), as the broker counts them."""
    with client.app.connection_for_read() as connection:
        channel = connection.default_channel
        redis = getattr(channel, "client", None)
        if redis is None:  # RabbitMQ: the broker counts them
            return broker.queue_length(channel, queue) if broker.is_amqp(client.broker_url) else 0
        # kombu keeps one list per priority level (the same keys Client.status searches).
        return sum(int(redis.llen(channel._q_for_pri(queue, pri))) for pri in channel.priority_steps)
