"""Whole-node faults: a worker node SIGKILLed with its children, and a preemption notice (SIGTERM).

The scenarios of ``python -m bench.faults node-loss|preempt``; the integration
tests run them small and assert on the report. Real Redis, real worker processes
(each in a process group of its own, so the whole node dies at once), the real model.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from evaluation.faults import _report, wait_all
from producer import Client, Job
from producer.local import LocalStack, RedisServer

__all__ = ["active_by_worker", "node_loss", "preempt", "wait_until"]

#: The sequential decoder: slower, so a job is surely still running when the fault comes.
SEQUENTIAL = {"ASR_BATCH_SIZE": "1"}


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll ``check`` until it returns something true; raise ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"{what}: not within {timeout:g} s")


def active_by_worker(url: str) -> dict[str, list[str]]:
    """Task ids each worker's children run now: ``{hostname: [id, ...]}`` (``url`` may be ``sentinel://``)."""
    client = Client(url, url)
    try:
        active = client.app.control.inspect(timeout=1.5).active() or {}
    finally:
        client.close()
    return {host: [task["id"] for task in tasks] for host, tasks in active.items()}


def _running_on(url: str, stack: LocalStack, count: int) -> list[str] | None:
    for host, ids in active_by_worker(url).items():
        if host.startswith(stack.hostname.split("@")[0] + "@") and len(ids) >= count:
            return ids
    return None


def _started_on(stack: LocalStack, jobs: Sequence[Job]) -> list[str] | None:
    """The ids of ``jobs`` once ``stack``'s worker has received them all and each has started
    (its first PROGRESS is stored): from its log and the backend, without asking the workers,
    whose answers to ``inspect`` come late on a loaded machine."""
    received = logged_at(stack.log_path, RECEIVED)
    if all(job.id in received for job in jobs) and all(job.state == "PROGRESS" for job in jobs):
        return [job.id for job in jobs]
    return None


def logged_at(log: Path, pattern: str) -> dict[str, float]:
    """``{task id: time.time() of its first line}`` for the lines of a worker ``log`` matching
    ``pattern``, whose one group is the task id; the time is the line's own timestamp."""
    found: dict[str, float] = {}
    text = log.read_text(errors="replace") if log.exists() else ""
    for stamp, task_id in re.findall(r"^\[([0-9-]+ [0-9:]+,[0-9]+): [^\]]*\] " + pattern, text, re.MULTILINE):
        at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()  # the worker's local time
        found.setdefault(task_id, at)
    return found


REQUEUED = r"requeued job ([0-9a-f-]{36}): its worker node"
RECEIVED = r"Task asr\.transcribe\[([0-9a-f-]{36})\] received"
#: What a worker logs when SIGTERM comes with ASR_SHUTDOWN_GRACE set (worker/runtime/preemption.py).
NOTICE = "SIGTERM: stop taking jobs"


def node_loss(
    folder: Path,
    audio: Path,
    *,
    per_worker: int = 2,
    victim_jobs: int | None = None,
    node_loss_seconds: float = 6.0,
    survivor_audio: Path | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Two workers run ``per_worker`` long jobs each; the whole first node (main + children) is SIGKILLed.

    The victim runs ``victim_jobs`` (default ``per_worker``) jobs of ``audio``, one a child, before
    the survivor starts; the survivor then takes ``per_worker`` of ``survivor_audio`` (default
    ``audio``): a longer file there keeps the survivor's own jobs running past the requeue on any
    machine, so "a live node's jobs stay" is put to the test.
    """
    env = {"ASR_NODE_LOSS_SECONDS": f"{node_loss_seconds:g}", **SEQUENTIAL, **(env or {})}
    victim_jobs = victim_jobs or per_worker
    redis = RedisServer().start()
    victim: LocalStack | None = None
    try:
        victim = LocalStack(
            redis_url=redis.url,
            concurrency=victim_jobs,
            env=env,
            new_session=True,
            log_path=folder / "victim.log",
        ).start()
        client = Client(redis.url, redis.url)
        submitted = client.submit_many([audio] * victim_jobs)
        on_victim = wait_until(lambda: _started_on(victim, submitted), 120, "victim busy")
        survivor = LocalStack(
            redis_url=redis.url, concurrency=per_worker, env=env, log_path=folder / "survivor.log"
        )
        with survivor:
            own = client.submit_many([survivor_audio or audio] * per_worker)
            submitted += own
            wait_until(lambda: _started_on(survivor, own), 120, "survivor busy")
            assert victim.worker is not None
            killed_at = time.time()
            os.killpg(victim.worker.pid, signal.SIGKILL)
            victim.worker.wait()
            requeued: dict[str, float] = {}

            def all_requeued() -> bool:
                requeued.update(logged_at(survivor.log_path, REQUEUED))
                return set(on_victim) <= set(requeued)

            wait_until(all_requeued, 10 * node_loss_seconds + 60, "the lost node's jobs requeued")
            outcomes = wait_all(submitted, timeout=600)
            done = {job.id: _done_at(job) for job in submitted}
            client.close()
            logs = [victim.log_path, survivor.log_path]
        report = _report("node_loss", submitted, outcomes, logs, kills=1, audio=audio.name)
        figures = _node_loss_figures(submitted, outcomes, on_victim, killed_at, requeued, done)
        return {**report, "node_loss_seconds": node_loss_seconds, **figures}
    finally:
        if victim is not None:
            victim.stop()  # already dead unless the run failed before the kill
        redis.stop()


def _node_loss_figures(
    jobs: Sequence[Job],
    outcomes: dict[str, Any],
    on_victim: list[str],
    killed_at: float,
    requeued: dict[str, float],
    done: dict[str, float],
) -> dict[str, Any]:
    last_requeue = max(requeued[i] for i in on_victim)
    kept = [job.id for job in jobs if job.id not in on_victim]
    pairs = _pairs(jobs, outcomes)
    return {
        "victim_jobs": on_victim,
        "seconds_to_requeue": round(last_requeue - killed_at, 1),
        "seconds_to_all_success": round(max(done.values()) - killed_at, 1),
        # The sweep that took the lost node's jobs ran while the survivor still ran its own.
        "survivor_jobs_outlived_the_requeue": all(done[i] > last_requeue for i in kept),
        "deliveries": {j.id: o.get("deliveries") for j, o in pairs},
        "survivor_job_seconds": [round(o["timings"]["total"], 1) for j, o in pairs if j.id in kept],
        "finished_by": {j.id: o.get("worker", {}).get("hostname") for j, o in pairs},
    }


def _pairs(jobs: Sequence[Job], outcomes: dict[str, Any]) -> list[tuple[Job, dict[str, Any]]]:
    return [(job, outcomes[job.id]) for job in jobs if isinstance(outcomes.get(job.id), dict)]


def _done_at(job: Job) -> float:
    done = job.client.app.AsyncResult(job.id).date_done
    if done is None:
        return time.time()
    return (done if done.tzinfo else done.replace(tzinfo=timezone.utc)).timestamp()  # Celery stores UTC


def preempt(
    folder: Path,
    audio: Path,
    *,
    grace: float = 2.0,
    late_audio: Path | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A worker runs a long job; SIGTERM with ``ASR_SHUTDOWN_GRACE=grace``; a second worker takes the job.

    With ``late_audio``, one more job of it is submitted once the first worker has logged the
    notice, while it still runs the first job: it must go to the second worker.
    """
    env = {**SEQUENTIAL, **(env or {})}
    redis = RedisServer().start()
    first: LocalStack | None = None
    try:
        first = LocalStack(
            redis_url=redis.url,
            concurrency=1,
            env={**env, "ASR_SHUTDOWN_GRACE": f"{grace:g}"},
            log_path=folder / "preempted.log",
        ).start()
        # The second worker waits on a queue of its own until the job runs on the first, so
        # the job cannot start there, however fast this machine is.
        # Two children there when a late job comes too, so it cannot hold up the handed-back one.
        with LocalStack(
            redis_url=redis.url,
            concurrency=1 if late_audio is None else 2,
            env=env,
            queues=["standby"],
            log_path=folder / "second.log",
        ) as second:
            client = Client(redis.url, redis.url)
            job = client.submit(audio)
            wait_until(lambda: _running_on(redis.url, first, 1), 120, "first worker busy")
            node = second.hostname.replace("%h", socket.gethostname())
            client.app.control.add_consumer(client.queue, destination=[node], reply=True, timeout=5)
            assert first.worker is not None
            termed_at = time.time()
            first.worker.send_signal(signal.SIGTERM)
            late = None
            if late_audio is not None:
                wait_until(lambda: NOTICE in first.log_path.read_text(errors="replace"), 30, "the notice")
                late = client.submit(late_audio)
            received = wait_until(
                lambda: logged_at(second.log_path, RECEIVED).get(job.id),
                60 + grace,
                "the job running on the second worker",
            )
            running_elsewhere = received - termed_at
            first.worker.wait(60)
            exited = time.time() - termed_at
            jobs = [job] + ([late] if late is not None else [])
            outcomes = wait_all(jobs, timeout=600)
            client.close()
            logs = [first.log_path, second.log_path]
        report = _report("preempt", jobs, outcomes, logs, kills=0, audio=audio.name)
        if late is not None:
            report["late_job_taken_by_preempted"] = late.id in logged_at(first.log_path, RECEIVED)
        result = outcomes.get(job.id) if isinstance(outcomes.get(job.id), dict) else {}
        return {
            **report,
            "grace_seconds": grace,
            "seconds_to_running_elsewhere": round(running_elsewhere, 1),
            "seconds_to_preempted_exit": round(exited, 1),
            "deliveries": result.get("deliveries"),
            "finished_by": result.get("worker", {}).get("hostname"),
            "finished_on_second_worker": str(result.get("worker", {}).get("hostname")).split("@")[0]
            == second.hostname.split("@")[0],
        }
    finally:
        if first is not None:
            first.stop()
        redis.stop()
