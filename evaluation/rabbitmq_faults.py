"""Faults with RabbitMQ as the broker: a whole worker node SIGKILLed, and a broker node SIGKILLed.

The scenarios of ``python -m bench.faults rabbitmq-node-loss|rabbitmq-leader``; the
integration tests run them small and assert on the report. Real RabbitMQ (a fresh vhost on
the machine's server, or a private three-node cluster), a private Redis for the results,
real worker processes (each in a process group of its own), the real model, real speech.

* ``worker_node_loss``: a worker is SIGKILLed with its children while it runs jobs, another
  idle. Its connection dies with it, and RabbitMQ hands its unacknowledged deliveries to the
  other worker at once: no liveness record, no node-loss timeout.
* ``leader_loss``: the RabbitMQ node that leads the ``asr`` quorum queue is SIGKILLed while
  jobs are queued and running, and more are submitted during the failover. Every job the
  broker confirmed must end SUCCESS; a submission that was not confirmed raises
  ``BrokerUnavailableError`` and is counted, never silently lost.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from evaluation import rabbitmq
from evaluation.faults import _report, wait_all
from evaluation.node_faults import wait_until
from producer import BrokerUnavailableError, Client, Job
from producer.local import LocalStack, RedisServer

__all__ = ["leader_loss", "worker_node_loss"]

#: The sequential decoder: slower, so a job is surely still running when the fault comes.
SEQUENTIAL = {"ASR_BATCH_SIZE": "1"}


@contextmanager
def _redis() -> Iterator[RedisServer]:
    """A private Redis for the results."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


def _node(hostname: str) -> str:
    return hostname.split("@")[0] + "@"


def _ready(url: str) -> int:
    """Messages ready in the ``asr`` queue at ``url``."""
    from kombu import Connection

    from producer.broker import queue_length

    with Connection(url) as connection:
        return queue_length(connection.default_channel, "asr")


def _workers_of(client: Client, jobs: Sequence[Job]) -> dict[str, str]:
    """``{job id: worker hostname}`` of the jobs that have started (PROGRESS or later)."""
    found = {}
    for job in jobs:
        status = client.status(job.id)
        if status.state not in ("PENDING", "RECEIVED") and status.worker:
            found[job.id] = status.worker
    return found


def worker_node_loss(folder: Path, audio: Path, *, per_worker: int = 1) -> dict[str, Any]:
    """Two workers of ``per_worker`` children on a fresh vhost; the first runs ``per_worker``
    jobs while the second waits on a standby queue; the second is told to consume the jobs'
    queue, and the first is SIGKILLed whole."""
    env = {**SEQUENTIAL, "ASR_CACHE_DIR": str(folder / "cache"), "ASR_NODE_LOSS_SECONDS": "3600"}
    with _redis() as redis, rabbitmq.vhost("asr-faults") as broker:
        victim, survivor = (
            LocalStack(
                concurrency=per_worker,
                env=env,
                redis_url=redis.url,
                broker_url=broker,
                log_path=folder / f"rabbit-{role}.log",
                new_session=True,
                queues=queues,
            )
            for role, queues in (("victim", ()), ("survivor", ("asr-standby",)))
        )
        stacks = [victim, survivor]
        with victim, survivor, Client(broker, redis.url) as client:
            submitted = [client.submit(audio) for _ in range(per_worker)]
            held = wait_until(
                lambda: len(found := _workers_of(client, submitted)) == per_worker and found,
                180,
                "the victim runs its jobs",
            )
            standby = survivor.hostname.replace("%h", socket.gethostname())
            wait_until(
                lambda: client.app.control.add_consumer("asr", destination=[standby], reply=True, timeout=5),
                60,
                "the survivor consuming the jobs' queue",
            )
            lost_ids = list(held)
            assert victim.worker is not None
            os.killpg(victim.worker.pid, signal.SIGKILL)
            killed = time.monotonic()
            lost = [j for j in submitted if j.id in lost_ids]

            def back_in_queue() -> bool:
                # Ready in the queue again, or already taken by the survivor.
                taken = _workers_of(client, lost).values()
                there = [w for w in taken if w.startswith(_node(survivor.hostname))]
                ended = [job.id for job in lost if client.status(job.id).state in ("SUCCESS", "FAILURE")]
                if ended and not there:
                    raise RuntimeError(f"the victim ended {ended} before the kill: give it longer audio")
                return _ready(broker) + len(there) >= len(lost)

            wait_until(back_in_queue, 300, "the lost jobs are back in the queue", every=0.05)
            requeued_after = time.monotonic() - killed
            done_at: dict[str, float] = {}
            deadline = time.monotonic() + 600
            while len(done_at) < len(lost_ids) and time.monotonic() < deadline:
                for job in submitted:
                    if job.id in lost_ids and job.id not in done_at and job.ready():
                        done_at[job.id] = time.monotonic() - killed
                time.sleep(0.1)
            outcomes = wait_all(submitted, 600)
            lost_done = list(done_at.values())
            return _report(
                "rabbitmq-node-loss",
                submitted,
                outcomes,
                [s.log_path for s in stacks],
                kills=1,
                lost_jobs=len(lost_ids),
                requeued_after_s=round(requeued_after, 2),
                lost_jobs_success_after_s=round(max(lost_done), 1) if lost_done else None,
                all_success=all(isinstance(o, dict) for o in outcomes.values()),
            )


def leader_loss(
    folder: Path, audio: Path, *, before: int = 6, during: int = 6, concurrency: int = 2
) -> dict[str, Any]:
    """A three-node cluster; ``before`` jobs submitted, the ``asr`` queue's leader SIGKILLed
    while one runs, ``during`` more submitted as the queue elects a new leader."""
    env = {**SEQUENTIAL, "ASR_CACHE_DIR": str(folder / "cache")}
    with _redis() as redis, rabbitmq.RabbitCluster(3) as cluster:
        stack = LocalStack(
            concurrency=concurrency,
            env=env,
            redis_url=redis.url,
            broker_url=cluster.url,
            log_path=folder / "rabbit-cluster-worker.log",
            new_session=True,
        )
        with stack, Client(cluster.url, redis.url) as client:
            confirmed: list[Job] = [client.submit(audio) for _ in range(before)]
            wait_until(lambda: _workers_of(client, confirmed), 180, "a job runs")
            leader = cluster.leader("asr")
            leader.kill()
            killed = time.monotonic()
            refused = 0
            for _ in range(during):
                try:
                    confirmed.append(client.submit(audio))
                except BrokerUnavailableError:
                    refused += 1
                    time.sleep(0.5)
            new_leader = cluster.leader("asr")
            elected_after = time.monotonic() - killed
            outcomes = wait_all(confirmed, 900)
            return _report(
                "rabbitmq-leader",
                confirmed,
                outcomes,
                [stack.log_path],
                kills=1,
                killed_node=leader.name,
                new_leader=new_leader.name,
                leader_known_after_s=round(elected_after, 1),
                not_confirmed=refused,
                all_done_after_s=round(time.monotonic() - killed, 1),
                all_success=all(isinstance(o, dict) for o in outcomes.values()),
            )
