"""A real fleet for the fault campaign: Redis (one AOF server, or a master, a replica and three
Sentinels), two worker nodes, and three producers streaming jobs the whole time.

The producers are the Python library (:class:`producer.Client`), a bare Celery client
(the task by name only) and the HTTP API (``POST /v1/jobs``); each keeps a few jobs in
flight, drawn from a seeded mix of sizes, and records every job it got an id for.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from evaluation.faults import speech_file
from evaluation.outages import JOB_OPTIONS, Sent, bare_celery, kill_redis
from evaluation.sentinel_topology import SentinelTopology
from producer import Client
from producer.api.local import ApiServer, server_env
from producer.local import LocalStack, RedisServer

__all__ = ["Fleet", "Sizes"]

API_KEY = "chaos-key"


@dataclass(frozen=True)
class Sizes:
    """Job sizes, as copies of jfk.flac (12 s each with its pause), and the fan-out length."""

    clip: int = 1
    medium: int = 3  #: 36 s
    long: int = 15  #: 3 minutes
    fanout: int = 28  #: 5.6 minutes: over ``fanout_seconds``, split across the fleet
    fanout_seconds: float = 300.0

    def mix(self) -> list[tuple[int, float]]:
        """(copies, weight) of the stream."""
        return [(self.clip, 0.4), (self.medium, 0.3), (self.long, 0.2), (self.fanout, 0.1)]


class Fleet:
    """Redis, two worker nodes, the API; :meth:`stream` starts the producers. A context manager."""

    def __init__(
        self,
        folder: Path,
        *,
        sentinel: bool,
        sizes: Sizes,
        seed: int,
        node_loss_seconds: float = 10.0,
        concurrency: int = 2,
        in_flight: int = 2,
    ) -> None:
        self.folder = folder
        self.sentinel = sentinel
        self.sizes = sizes
        self.seed = seed
        self.node_loss_seconds = node_loss_seconds
        self.concurrency = concurrency
        self.in_flight = in_flight
        self.topology: SentinelTopology | None = None
        self.redis: RedisServer | None = None
        self.nodes: list[LocalStack] = []
        self.retired: list[LocalStack] = []  #: nodes killed on purpose (their logs still count)
        self.api: ApiServer | None = None
        self.sent: list[Sent] = []
        self.refused: int = 0  #: submissions that got no id (Redis away): nothing was promised
        self._lock = threading.Lock()
        self._paused = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.audio = {n: speech_file(n, folder) for n in {c for c, _ in sizes.mix()}}

    @property
    def url(self) -> str:
        return self.topology.url if self.topology else self.redis.url  # type: ignore[union-attr]

    @property
    def master_name(self) -> str | None:
        return self.topology.master_name if self.topology else None

    def env(self) -> dict[str, str]:
        env = {
            "ASR_NODE_LOSS_SECONDS": f"{self.node_loss_seconds:g}",
            "ASR_FANOUT_SECONDS": f"{self.sizes.fanout_seconds:g}",
            "ASR_AUDIO_ROOTS": str(self.folder),
        }
        if self.master_name:
            env["REDIS_SENTINEL_MASTER"] = self.master_name
        return env

    def start(self) -> Fleet:
        if self.sentinel:
            self.topology = SentinelTopology(down_after_ms=2000, failover_timeout_ms=10000).start()
            os.environ["REDIS_SENTINEL_MASTER"] = self.topology.master_name  # this process's Client
        else:
            self.redis = RedisServer(persistent=True).start()
        self.nodes = [self._node(i) for i in range(2)]
        uploads = self.folder / "uploads"
        uploads.mkdir(exist_ok=True)
        self.api = ApiServer(
            self.url, self.folder / "api.log", **server_env(uploads, keys=API_KEY, **self.env())
        ).start()
        return self

    def _node(self, index: int) -> LocalStack:
        generation = sum(1 for n in self.retired if n.hostname.startswith(f"chaos{index}-")) + 1
        stack = LocalStack(
            redis_url=self.url,
            concurrency=self.concurrency,
            env=self.env(),
            new_session=True,
            log_path=self.folder / f"node{index}-{generation}.log",
        )
        stack.hostname = f"chaos{index}-{generation}-{os.getpid()}@%h"
        return stack.start()

    def replace_node(self, index: int) -> None:
        """A node killed on purpose: start a new one in its place."""
        self.retired.append(self.nodes[index])
        self.nodes[index] = self._node(index)

    def logs(self) -> list[Path]:
        return [n.log_path for n in [*self.retired, *self.nodes]]

    # --- producers -------------------------------------------------------------------

    def stream(self) -> None:
        """Start the three producers (paused by :meth:`pause`, resumed by :meth:`resume`)."""
        for k, name in enumerate(("python", "celery", "http")):
            thread = threading.Thread(target=self._produce, args=(name, k), name=f"chaos-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def pause(self) -> None:
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def _produce(self, name: str, k: int) -> None:
        rng = random.Random(self.seed * 1000 + k)
        sizes, weights = zip(*self.sizes.mix(), strict=True)
        submit = self._submitter(name)
        mine: list[Sent] = []
        app = bare_celery(self.url, self.master_name)
        while not self._stop.is_set():
            if self._paused.is_set() or self._busy(app, mine) >= self.in_flight:
                time.sleep(0.5)
                continue
            copies = rng.choices(sizes, weights)[0]
            try:
                job_id = submit(self.audio[copies])
            except Exception:
                with self._lock:
                    self.refused += 1
                time.sleep(1.0)
                continue
            sent = Sent(job_id, copies, name, at=time.time())
            mine.append(sent)
            with self._lock:
                self.sent.append(sent)
            time.sleep(rng.uniform(0.5, 2.0))
        app.close()

    def _busy(self, app: Any, mine: Sequence[Sent]) -> int:
        busy = 0
        for sent in mine[-10:]:
            try:
                if app.AsyncResult(sent.id).state not in ("SUCCESS", "FAILURE", "REVOKED"):
                    busy += 1
            except Exception:
                busy += 1
        return busy

    def _submitter(self, name: str) -> Any:
        if name == "python":
            client = Client(self.url, self.url)
            return lambda path: client.submit(path, **JOB_OPTIONS).id
        if name == "celery":
            app = bare_celery(self.url, self.master_name)
            return lambda path: app.send_task("asr.transcribe", args=[str(path)], kwargs=JOB_OPTIONS).id
        assert self.api is not None
        http = httpx.Client(base_url=self.api.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)

        def post(path: Path) -> str:
            answer = http.post("/v1/jobs", json={"audio": str(path), "options": JOB_OPTIONS})
            answer.raise_for_status()
            return str(answer.json()["id"])

        return post

    # --- teardown --------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        if self.api is not None:
            self.api.stop()
        for node in self.nodes:
            node.stop(timeout=30, cold=True)
        if self.topology is not None:
            self.topology.stop()
            os.environ.pop("REDIS_SENTINEL_MASTER", None)
        if self.redis is not None:
            if self.redis.process is None:
                self.redis.start()  # a crash left it down: nothing to stop
            self.redis.stop()

    def kill_redis(self) -> None:
        assert self.redis is not None
        kill_redis(self.redis)

    def __enter__(self) -> Fleet:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
