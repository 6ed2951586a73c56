"""Fault injection against a real Redis, real worker processes and the real model.

    python -m bench.faults [kill|redis|shutdown|soak|all] [--jobs N] [--kills N] [--soak-jobs N]
    python -m bench.faults node-loss|preempt|failover [--per-worker N] [--node-loss-seconds S] [--grace S]

Each scenario returns a report; the integration tests run them small and assert
on the report, this script runs them larger and prints it. Inputs are built
from real speech: ``jfk.flac`` repeated with 1 s pauses (said in each report).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from evaluation.memory import status_mib
from producer import Client, Job, TranscriptionFailed
from producer.local import LocalStack, RedisServer

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["kill_children", "redis_restart", "soak", "warm_shutdown"]


def speech_file(copies: int, folder: Path) -> Path:
    """``copies`` x jfk.flac (11 s of real speech) with 1 s pauses, as 16 kHz WAV."""
    from evaluation.audio import concatenate

    source = ROOT.parent / "shared" / "audio" / "jfk.flac"
    if not source.is_file():
        source = ROOT / "samples" / "jfk.flac"
    target = folder / f"jfk_x{copies}.wav"
    return target if target.exists() else concatenate(source, copies, target)


def successes_in_logs(logs: Iterable[Path]) -> Counter[str]:
    """How many times each task id finished successfully, from the workers' logs."""
    counts: Counter[str] = Counter()
    for log in logs:
        counts.update(
            re.findall(r"asr\.transcribe\[([0-9a-f-]{36})\] succeeded", log.read_text(errors="replace"))
        )
    return counts


def wait_all(jobs: Sequence[Job], timeout: float) -> dict[str, Any]:
    """Wait for every job, riding out backend outages; map task id -> result or error name."""
    outcomes: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    while len(outcomes) < len(jobs) and time.monotonic() < deadline:
        for job in jobs:
            if job.id in outcomes:
                continue
            try:
                if job.ready():
                    outcomes[job.id] = job.result(timeout=0)
            except TranscriptionFailed as failure:
                outcomes[job.id] = failure.error_type
            except Exception:  # the backend is down for a moment: ask again
                pass
        time.sleep(0.2)
    return outcomes


def _report(
    name: str, jobs: Sequence[Job], outcomes: dict[str, Any], logs: Iterable[Path], **extra: Any
) -> dict[str, Any]:
    successes = successes_in_logs(logs)
    return {
        "scenario": name,
        "jobs": len(jobs),
        "succeeded": sum(isinstance(o, dict) for o in outcomes.values()),
        "failed": {job.id: o for job, o in ((j, outcomes.get(j.id)) for j in jobs) if isinstance(o, str)},
        "lost": [job.id for job in jobs if job.id not in outcomes],
        "transcribed_twice": sorted(i for i, n in successes.items() if n > 1),
        "redelivered": sum(
            1 for o in outcomes.values() if isinstance(o, dict) and o.get("deliveries", 1) > 1
        ),
        **extra,
    }


def _active_child_pids(stack: LocalStack) -> list[int]:
    return [pid for pid, _ in _active_children(stack)]


def _active_children(stack: LocalStack) -> list[tuple[int, str]]:
    """``(child pid, task id)`` of every job the stack's children run now."""
    from celery import Celery

    app = Celery(broker=stack.url, backend=stack.url, set_as_current=False)
    try:
        active = app.control.inspect(timeout=2).active() or {}
    finally:
        app.close()
    return [
        (task["worker_pid"], task["id"])
        for tasks in active.values()
        for task in tasks
        if task.get("worker_pid")
    ]


def kill_children(stack: LocalStack, client: Client, audio: Path, *, jobs: int, kills: int) -> dict[str, Any]:
    """SIGKILL a prefork child in the middle of a job, ``kills`` times, each time a different job's.

    ``audio`` must take the children several seconds (the kill comes 0.5 s after the job is
    seen running); a job killed once is not chosen again, so ``kills`` jobs each run twice.
    """
    submitted = client.submit_many([audio] * jobs)
    killed: list[int] = []
    killed_jobs: list[str] = []
    deadline = time.monotonic() + 120
    while len(killed) < kills and time.monotonic() < deadline:
        running = [(p, t) for p, t in _active_children(stack) if p not in killed and t not in killed_jobs]
        if running:
            pid, task_id = running[0]
            time.sleep(0.5)  # let it get into the decoder
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            killed_jobs.append(task_id)
            time.sleep(1.0)
        else:
            time.sleep(0.1)
    outcomes = wait_all(submitted, timeout=300)
    return _report(
        "kill_children",
        submitted,
        outcomes,
        [stack.log_path],
        kills=len(killed),
        killed_jobs=killed_jobs,
        audio=audio.name,
    )


def redis_restart(folder: Path, audio: Path, *, jobs: int, outage: float = 3.0) -> dict[str, Any]:
    """Stop Redis while jobs are queued and running, start it again on the same port."""
    redis = RedisServer(persistent=True).start()
    try:
        with LocalStack(redis_url=redis.url, log_path=folder / "redis_restart.log") as stack:
            client = Client(stack.url, stack.url)
            submitted = client.submit_many([audio] * jobs)
            deadline = time.monotonic() + 60
            while not _active_child_pids(stack) and time.monotonic() < deadline:
                time.sleep(0.1)
            redis.stop(keep_data=True)
            time.sleep(outage)
            redis.start()
            outcomes = wait_all(submitted, timeout=300)
            client.close()
            worker_alive = stack.worker is not None and stack.worker.poll() is None
            return _report(
                "redis_restart",
                submitted,
                outcomes,
                [stack.log_path],
                outage_seconds=outage,
                worker_alive_after=worker_alive,
                audio=audio.name,
            )
    finally:
        redis.stop()


def warm_shutdown(
    folder: Path, audio: Path, *, jobs: int, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """SIGTERM the worker mid-job (warm shutdown), then start a new worker (both with ``env``)."""
    redis = RedisServer().start()
    try:
        first = LocalStack(redis_url=redis.url, env=env, log_path=folder / "shutdown_first.log").start()
        client = Client(redis.url, redis.url)
        submitted = client.submit_many([audio] * jobs)
        deadline = time.monotonic() + 60
        while not _active_child_pids(first) and time.monotonic() < deadline:
            time.sleep(0.1)
        first.stop()  # SIGTERM: running jobs finish, unstarted ones go back to the queue
        done_by_first = sum(1 for j in submitted if j.ready())
        with LocalStack(redis_url=redis.url, env=env, log_path=folder / "shutdown_second.log") as second:
            outcomes = wait_all(submitted, timeout=300)
            logs = [first.log_path, second.log_path]
        client.close()
        return _report(
            "warm_shutdown", submitted, outcomes, logs, done_before_restart=done_by_first, audio=audio.name
        )
    finally:
        redis.stop()


def soak(folder: Path, audio: Path, *, jobs: int) -> dict[str, Any]:
    """Hundreds of short jobs through 2 children: lost, duplicates, child RSS growth."""
    with LocalStack(log_path=folder / "soak.log") as stack:
        client = Client(stack.url, stack.url)
        warm = client.submit_many([audio] * 4)
        wait_all(warm, timeout=120)
        pids = stack.child_pids()
        rss_start = {pid: status_mib(pid, "VmRSS") for pid in pids}
        started = time.monotonic()
        submitted = client.submit_many([audio] * jobs)
        outcomes = wait_all(submitted, timeout=60 + 5 * jobs)
        seconds = time.monotonic() - started
        rss_end = {pid: status_mib(pid, "VmRSS") for pid in stack.child_pids()}
        client.close()
        growth = {
            str(pid): round(100.0 * (rss_end[pid] - rss_start[pid]) / rss_start[pid], 1)
            for pid in rss_start
            if pid in rss_end and rss_start[pid]
        }
        return _report(
            "soak",
            submitted,
            outcomes,
            [stack.log_path],
            seconds=round(seconds, 1),
            child_rss_mib_start={str(p): round(v, 1) for p, v in rss_start.items()},
            child_rss_mib_end={str(p): round(v, 1) for p, v in rss_end.items()},
            rss_growth_percent=growth,
            audio=audio.name,
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "scenario",
        nargs="?",
        default="all",
        choices=[
            "kill", "redis", "shutdown", "soak", "node-loss", "preempt", "failover",
            "rabbitmq-node-loss", "rabbitmq-leader", "all",
        ],
    )
    parser.add_argument("--jobs", type=int, default=30, help="jobs per fault scenario (default 30)")
    parser.add_argument("--kills", type=int, default=6, help="children to SIGKILL (default 6)")
    parser.add_argument("--soak-jobs", type=int, default=300, help="jobs in the soak (default 300)")
    parser.add_argument("--per-worker", type=int, default=4, help="node-loss: children and jobs per worker")
    parser.add_argument(
        "--node-loss-seconds", type=float, default=30.0, help="node-loss: ASR_NODE_LOSS_SECONDS"
    )
    parser.add_argument("--grace", type=float, default=5.0, help="preempt: ASR_SHUTDOWN_GRACE")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="asr-faults-"))
    long_audio = speech_file(3, folder)  # 36 s of speech: a few seconds of work per job
    reports = []
    if args.scenario in ("kill", "all"):
        with LocalStack(log_path=folder / "kill.log") as stack:
            client = Client(stack.url, stack.url)
            reports.append(kill_children(stack, client, long_audio, jobs=args.jobs, kills=args.kills))
            client.close()
    if args.scenario in ("redis", "all"):
        reports.append(redis_restart(folder, long_audio, jobs=args.jobs))
    if args.scenario in ("shutdown", "all"):
        reports.append(warm_shutdown(folder, long_audio, jobs=args.jobs))
    if args.scenario in ("soak", "all"):
        reports.append(soak(folder, speech_file(1, folder), jobs=args.soak_jobs))
    reports += _node_faults(args, folder, long_audio)
    for report in reports:
        print(json.dumps(report, indent=2))
    print(f"logs: {folder}")
    return 0 if all(not r["lost"] and not r["failed"] for r in reports) else 1


def _node_faults(args: argparse.Namespace, folder: Path, audio: Path) -> list[dict[str, Any]]:
    """The whole-node and Redis-failover scenarios (evaluation/node_faults.py, evaluation/failover.py)."""
    from evaluation.failover import failover
    from evaluation.node_faults import node_loss, preempt

    reports = []
    if args.scenario in ("node-loss", "all"):
        reports.append(
            node_loss(
                folder,
                audio,
                per_worker=args.per_worker,
                node_loss_seconds=args.node_loss_seconds,
                survivor_audio=speech_file(8, folder),
            )
        )
    if args.scenario in ("preempt", "all"):
        reports.append(preempt(folder, speech_file(8, folder), grace=args.grace))
    if args.scenario in ("failover", "all"):
        reports.append(failover(folder, audio, jobs=args.jobs))
    reports += _rabbitmq_faults(args, folder, audio)
    return reports


def _rabbitmq_faults(args: argparse.Namespace, folder: Path, audio: Path) -> list[dict[str, Any]]:
    """RabbitMQ as the broker (evaluation/rabbitmq_faults.py): a worker node and a broker node lost."""
    from evaluation import rabbitmq
    from evaluation.rabbitmq_faults import leader_loss, worker_node_loss

    wanted = args.scenario in ("rabbitmq-node-loss", "rabbitmq-leader")
    why = rabbitmq.available()
    if not wanted or why:
        if wanted:
            print(f"skipped: {why}")
        return []
    reports = []
    if args.scenario == "rabbitmq-node-loss":
        reports.append(worker_node_loss(folder, audio, per_worker=args.per_worker))
    if args.scenario == "rabbitmq-leader":
        half = max(1, args.jobs // 2)
        reports.append(leader_loss(folder, audio, before=half, during=half))
    return reports


if __name__ == "__main__":
    raise SystemExit(main())
