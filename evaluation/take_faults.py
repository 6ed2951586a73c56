"""A worker node SIGKILLed while it takes jobs off Redis: is every job still somewhere?

The scenarios of ``python -m bench.take_window``; the integration tests run them small
and assert on the report. A private Redis, real worker processes (a process group of
their own, so the whole node dies at once), the real model.

After each kill, every submitted job is placed by what Redis holds (:func:`placement`):

* ``result``: its result is stored;
* ``queued``: its message is on a queue list;
* ``held``: unacknowledged, with a holder record naming the dead node (the node-loss
  sweep puts it back: :mod:`worker.runtime.nodeloss`);
* ``unheld``: unacknowledged without a holder record (left to the visibility timeout,
  hours);
* ``nowhere``: lost: taken off its queue and never recorded.

``ASR_TAKE_POLL_SECONDS=0`` makes the worker take with kombu's ``BRPOP``, for the
side-by-side figures (:mod:`worker.runtime.take`).
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evaluation.faults import wait_all
from evaluation.node_faults import wait_until
from producer import Client, Job
from producer.local import LocalStack, RedisServer
from worker.runtime.liveness import holder_key

__all__ = ["frozen_then_killed", "idle_pickup", "kills_while_taking", "placement"]

def placement(redis_url: str, jobs: Sequence[Job]) -> dict[str, str]:
    """``{job id: place}`` for ``jobs``, read from the Redis at ``redis_url`` (see the module doc)."""
    from redis import StrictRedis

    client = StrictRedis.from_url(redis_url)
    try:
        queued = set()
        for key in client.scan_iter(count=1000):
            if client.type(key) == b"list":
                for raw in client.lrange(key, 0, -1):
                    queued.add(_task_id(raw))
        unacked = {
            _task_id(raw, wrapped=True): tag.decode() for tag, raw in client.hgetall("unacked").items()
        }
        places = {}
        for job in jobs:
            meta = client.get(f"celery-task-meta-{job.id}")
            if meta is not None and json.loads(meta)["status"] in ("SUCCESS", "FAILURE"):
                places[job.id] = "result"
            elif job.id in queued:
                places[job.id] = "queued"
            elif job.id in unacked:
                places[job.id] = "held" if client.exists(holder_key(unacked[job.id])) else "unheld"
            else:
                places[job.id] = "nowhere"
        return places
    finally:
        client.close()


def _task_id(raw: bytes, *, wrapped: bool = False) -> str | None:
    try:
        message = json.loads(raw)
        return str((message[0] if wrapped else message)["headers"]["id"])
    except (ValueError, KeyError, IndexError, TypeError):
        return None  # not a task message (a control reply, a malformed entry)


def _asking(redis_url: str) -> bool:
    """Whether a client of the Redis at ``redis_url`` is asking for a job (BRPOP or the take script)."""
    from redis import StrictRedis

    client = StrictRedis.from_url(redis_url)
    try:
        return any(c.get("cmd") in ("brpop", "eval") for c in client.client_list())
    finally:
        client.close()


def _killable(redis_url: str, env: dict[str, str], log: Path, *, concurrency: int) -> LocalStack:
    """A started worker node in a process group of its own, so that it can be killed whole."""
    return LocalStack(
        redis_url=redis_url, concurrency=concurrency, env=env, new_session=True, log_path=log
    ).start()


def _survivor(redis_url: str, folder: Path, env: dict[str, str], name: str) -> LocalStack:
    return LocalStack(redis_url=redis_url, concurrency=2, env=env, log_path=folder / f"{name}-survivor.log")


def frozen_then_killed(folder: Path, audio: Path, *, take_poll_seconds: float) -> dict[str, Any]:
    """An idle node is frozen (SIGSTOP), a job is submitted, the node is SIGKILLed; a survivor starts.

    With ``BRPOP`` the idle node's pending command (sent again every second) takes the job
    as soon as it is sent, into a socket nobody will read: the job is lost, unless the
    freeze fell between two BRPOPs. With the atomic take a frozen node sends nothing, and
    the job waits on its queue for the survivor.
    """
    env = {"ASR_TAKE_POLL_SECONDS": f"{take_poll_seconds:g}", "ASR_NODE_LOSS_SECONDS": "4"}
    redis = RedisServer().start()
    try:
        victim = _killable(redis.url, env, folder / f"frozen-{take_poll_seconds:g}.log", concurrency=1)
        assert victim.worker is not None
        client = Client(redis.url, redis.url)
        wait_until(lambda: _asking(redis.url), 30, "the idle node asking for work")
        os.killpg(victim.worker.pid, signal.SIGSTOP)
        # A BRPOP waiting in Redis takes the job within the LPUSH itself: where the job is
        # once submit returns is where it stays.
        job = client.submit(audio)
        before_kill = placement(redis.url, [job])[job.id]
        os.killpg(victim.worker.pid, signal.SIGKILL)
        victim.worker.wait()
        victim.stop()
        with _survivor(redis.url, folder, env, f"frozen-{take_poll_seconds:g}"):
            outcome = wait_all([job], 120 if before_kill != "nowhere" else 15).get(job.id, "not ended")
        client.close()
        return {
            "scenario": "frozen_then_killed",
            "take_poll_seconds": take_poll_seconds,
            "place_before_kill": before_kill,
            "outcome": outcome if not isinstance(outcome, dict) else "SUCCESS",
            "text": outcome.get("text", "") if isinstance(outcome, dict) else "",
        }
    finally:
        redis.stop()


def kills_while_taking(
    folder: Path,
    audio: Path,
    *,
    seed: int,
    kills: int,
    jobs_per_kill: int = 200,
    speech_every: int = 25,
    take_poll_seconds: float = 0.1,
) -> dict[str, Any]:
    """``kills`` times: a 2-child node takes a stream of jobs and is SIGKILLed whole at a seeded moment.

    Most jobs name a missing file: each fails fast with ``AudioNotFoundError``, so the node
    takes a job every few milliseconds and a kill at a random moment often lands while it
    takes one; every ``speech_every``-th job is ``audio``. After each kill the jobs are
    placed (:func:`placement`); after the last, a survivor runs what is left.
    """
    rng = random.Random(seed)
    env = {"ASR_TAKE_POLL_SECONDS": f"{take_poll_seconds:g}", "ASR_NODE_LOSS_SECONDS": "4"}
    redis = RedisServer().start()
    client = Client(redis.url, redis.url)
    jobs: list[Job] = []
    speech: set[str] = set()
    held: set[str] = set()  # jobs a dead node held at a kill: the node-loss sweep's to put back
    rounds = []
    try:
        for kill in range(kills):
            node = _killable(
                redis.url, env, folder / f"taker-{take_poll_seconds:g}-{seed}-{kill}.log", concurrency=2
            )
            assert node.worker is not None
            for k in range(jobs_per_kill):
                is_speech = k % speech_every == speech_every - 1
                jobs.append(client.submit(audio if is_speech else folder / f"missing-{kill}-{k}.wav"))
                if is_speech:
                    speech.add(jobs[-1].id)
            time.sleep(rng.uniform(0.2, 2.0))
            os.killpg(node.worker.pid, signal.SIGKILL)
            node.worker.wait()
            node.stop()
            places = placement(redis.url, jobs)
            held.update(i for i, place in places.items() if place == "held")
            rounds.append({"kill": kill, **Counter(places.values())})
        places = placement(redis.url, jobs)
        # What is lost or left to the visibility timeout (hours) is not waited for.
        waiting = [job for job in jobs if places[job.id] in ("result", "queued", "held")]
        with _survivor(redis.url, folder, env, f"taker-{take_poll_seconds:g}-{seed}"):
            outcomes = wait_all(waiting, 600)
        ended: Counter[str] = Counter("SUCCESS" if isinstance(o, dict) else str(o) for o in outcomes.values())
        return {
            "scenario": "kills_while_taking",
            "seed": seed,
            "take_poll_seconds": take_poll_seconds,
            "jobs": len(jobs),
            "rounds": rounds,
            "lost": sorted(i for i, place in places.items() if place == "nowhere"),
            "unheld": sorted(i for i, place in places.items() if place == "unheld"),
            "held_by_dead_nodes": len(held),
            "ended": dict(ended),
            "not_ended": len(jobs) - len(outcomes),
            "speech_jobs": len(speech),
            "speech_texts": [
                o.get("text", "") for i, o in outcomes.items() if i in speech and isinstance(o, dict)
            ],
        }
    finally:
        client.close()
        redis.stop()


def idle_pickup(folder: Path, *, take_poll_seconds: float, jobs: int = 20) -> dict[str, Any]:
    """An idle 1-child worker: seconds from submit to the result of a job that fails at once
    (a missing file), one job at a time, and the commands an idle worker sends Redis a second."""
    from redis import StrictRedis

    env = {"ASR_TAKE_POLL_SECONDS": f"{take_poll_seconds:g}"}
    redis = RedisServer().start()
    client = Client(redis.url, redis.url)
    direct = StrictRedis.from_url(redis.url)
    try:
        with LocalStack(
            redis_url=redis.url, concurrency=1, env=env, log_path=folder / f"idle-{take_poll_seconds:g}.log"
        ):
            time.sleep(1.0)
            before = direct.info("stats")["total_commands_processed"]
            time.sleep(5.0)
            idle_commands = (direct.info("stats")["total_commands_processed"] - before - 2) / 5.0
            seconds = []
            for k in range(jobs):
                time.sleep(0.25)  # idle again, at a moment unrelated to the poll
                job = client.submit(folder / f"missing-idle-{k}.wav")
                start = time.monotonic()
                while not job.ready():
                    time.sleep(0.002)
                seconds.append(time.monotonic() - start)
        seconds.sort()
        return {
            "scenario": "idle_pickup",
            "take_poll_seconds": take_poll_seconds,
            "jobs": jobs,
            "median_s": round(seconds[len(seconds) // 2], 3),
            "max_s": round(seconds[-1], 3),
            "idle_redis_commands_per_s": round(idle_commands, 1),
        }
    finally:
        direct.close()
        client.close()
        redis.stop()
