"""A Redis crash while jobs run: the master SIGKILLed behind Sentinel, or a lone AOF Redis
SIGKILLed and restarted on the same port and data; jobs sent by a bare Celery client.

The scenarios the integration tests run (tests/integration/test_outages.py) and the
pieces the fault campaign (bench/chaos.py) shares: a bare Celery producer (the task by
name only, as another service would send it), jobs of known speech scored against their
reference, and a worker that must stay up throughout.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery

from evaluation.faults import speech_file, successes_in_logs
from evaluation.scoring import errors
from evaluation.sentinel_topology import SentinelTopology
from producer.local import LocalStack, RedisServer

__all__ = [
    "Sent",
    "bare_celery",
    "check_jobs",
    "jfk_reference",
    "kill_redis",
    "redis_crash",
    "sentinel_crash",
    "wait_ready",
    "worker_exits",
]

ROOT = Path(__file__).resolve().parent.parent
#: A transcript is right when its word error rate against the reference is at most this
#: (tiny.en on CPU reads jfk.flac with 0-1 errors in 22 words; a lost sentence is 5 %).
MAX_WER = 0.15
#: The options of every job these checks send. Copies of one clip repeat their text, so a window's
#: greedy text can fail Whisper's compression-ratio check, and faster-whisper's default ladder
#: then samples at temperatures up to 1.0: random text (seen: 0.48 WER on two copies, on a node
#: under load, no fault near it). These checks are about delivery, not decoding, so their jobs
#: decode greedily: the same right text every time.
JOB_OPTIONS: dict[str, Any] = {"temperature": 0.0}
#: What a worker's main process logs when it exits on an error.
EXIT_LINES = ("Unrecoverable error", "CRITICAL/MainProcess")


def jfk_reference(copies: int) -> str:
    """The reference of jfk.flac repeated ``copies`` times (the shared copy, else the shipped one)."""
    path = ROOT.parent / "shared" / "audio" / "references.json"
    if not path.is_file():
        path = ROOT / "tests" / "data" / "references.json"
    refs = json.loads(path.read_text())
    return " ".join([refs["jfk.flac"]["text"]] * copies)


@dataclass
class Sent:
    """One job a producer got an id for."""

    id: str
    copies: int  #: jfk.flac repeated this many times: its reference
    by: str  #: which producer sent it
    at: float = field(default_factory=time.time)  #: when the send returned the id
    checked: bool = False  #: a campaign round has checked its end


def bare_celery(url: str, master_name: str | None = None) -> Celery:
    """A Celery client that knows only the broker URL (and the Sentinel master's name)."""
    app = Celery(broker=url, backend=url, set_as_current=False)
    if master_name:
        options = {"master_name": master_name}
        app.conf.broker_transport_options = options
        app.conf.result_backend_transport_options = options
    app.conf.result_backend_always_retry = True
    app.conf.result_backend_max_retries = 30
    return app


def wait_ready(app: Celery, jobs: Sequence[Sent], timeout: float) -> dict[str, tuple[str, Any]]:
    """``{id: (state, result)}`` once every job is ready or ``timeout`` passed (riding out outages)."""
    outcomes: dict[str, tuple[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for job in jobs:
            if job.id in outcomes:
                continue
            try:
                result = app.AsyncResult(job.id)
                if result.state in ("SUCCESS", "FAILURE", "REVOKED"):
                    outcomes[job.id] = (result.state, result.result)
            except Exception:  # the backend is away for a moment: ask again
                pass
        if len(outcomes) == len(jobs):
            break
        time.sleep(0.5)
    for job in jobs:
        if job.id not in outcomes:
            try:
                outcomes[job.id] = (app.AsyncResult(job.id).state, None)
            except Exception as exc:
                outcomes[job.id] = (f"unreadable: {type(exc).__name__}", None)
    return outcomes


def check_jobs(jobs: Sequence[Sent], outcomes: dict[str, tuple[str, Any]]) -> dict[str, Any]:
    """Which jobs did not end SUCCESS, and which SUCCESS transcripts are wrong."""
    not_success = {j.id: outcomes[j.id][0] for j in jobs if outcomes[j.id][0] != "SUCCESS"}
    wrong = {}
    for job in jobs:
        state, result = outcomes[job.id]
        if state == "SUCCESS":
            text = result.get("text", "") if isinstance(result, dict) else str(result)
            wer = errors(jfk_reference(job.copies), text).wer
            if wer > MAX_WER:
                wrong[job.id] = _wrong(job, wer, result)
    return {"jobs": len(jobs), "not_success": not_success, "wrong_transcripts": wrong}


def _wrong(job: Sent, wer: float, result: Any) -> dict[str, Any]:
    """What a wrong transcript's job was, for the report (jfk.flac copies: test data, not private)."""
    facts = result if isinstance(result, dict) else {}
    return {
        "wer": round(wer, 3),
        "copies": job.copies,
        "by": job.by,
        "deliveries": facts.get("deliveries"),
        "pieces": [
            (p.get("index"), p.get("deliveries"), p.get("start"), p.get("end"))
            for p in facts.get("pieces") or []
        ],
        "text": facts.get("text", str(result)),
    }


def worker_exits(stacks: Sequence[LocalStack]) -> list[str]:
    """The stacks whose worker exited, or whose log shows a main-process error."""
    found = []
    for stack in stacks:
        text = stack.log_path.read_text(errors="replace") if stack.log_path.exists() else ""
        exited = stack.worker is None or stack.worker.poll() is not None
        if exited or any(line in text for line in EXIT_LINES):
            found.append(stack.hostname)
    return found


def _send(app: Celery, audio: dict[int, Path], copies: Sequence[int]) -> list[Sent]:
    return [
        Sent(app.send_task("asr.transcribe", args=[str(audio[n])], kwargs=JOB_OPTIONS).id, n, "celery")
        for n in copies
    ]


def _running(app: Celery, jobs: Sequence[Sent], count: int) -> bool:
    try:
        return sum(app.AsyncResult(j.id).state == "PROGRESS" for j in jobs) >= count
    except Exception:
        return False


def _wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(0.2)


def _run(
    app: Celery,
    stack: LocalStack,
    audio: dict[int, Path],
    before: Sequence[int],
    after: Sequence[int],
    crash: Any,
    timeout: float,
) -> dict[str, Any]:
    jobs = _send(app, audio, before)
    _wait(lambda: _running(app, jobs, 2), 300, "two jobs running")
    outage = crash()
    jobs += _send(app, audio, after)
    outcomes = wait_ready(app, jobs, timeout)
    report = check_jobs(jobs, outcomes)
    twice = successes_in_logs([stack.log_path])
    return {
        **report,
        **outage,
        "worker_exits": worker_exits([stack]),
        "ran_twice": sorted(i for i, n in twice.items() if n > 1),
        "log": str(stack.log_path),
    }


def sentinel_crash(
    folder: Path, *, before: Sequence[int], after: Sequence[int], concurrency: int = 2, timeout: float = 900
) -> dict[str, Any]:
    """Master SIGKILLed once two jobs of ``before`` run (jfk copies per job); ``after`` sent once promoted."""
    audio = {n: speech_file(n, folder) for n in {*before, *after}}
    with SentinelTopology(down_after_ms=2000, failover_timeout_ms=10000) as topo:
        env = {"REDIS_SENTINEL_MASTER": topo.master_name}
        with LocalStack(
            redis_url=topo.url, concurrency=concurrency, env=env, log_path=folder / "sentinel-worker.log"
        ) as stack:
            app = bare_celery(topo.url, topo.master_name)

            def crash() -> dict[str, Any]:
                killed = topo.kill_master()
                return {"seconds_to_promotion": round(topo.wait_for_failover(killed), 1)}

            try:
                return _run(app, stack, audio, before, after, crash, timeout)
            finally:
                app.close()


def redis_crash(
    folder: Path,
    *,
    before: Sequence[int],
    after: Sequence[int],
    down: float = 5.0,
    concurrency: int = 2,
    timeout: float = 900,
) -> dict[str, Any]:
    """An AOF Redis SIGKILLed once two jobs run, restarted ``down`` s later on the same port and data."""
    audio = {n: speech_file(n, folder) for n in {*before, *after}}
    redis = RedisServer(persistent=True).start()
    try:
        with LocalStack(
            redis_url=redis.url, concurrency=concurrency, log_path=folder / "redis-worker.log"
        ) as stack:
            app = bare_celery(redis.url)

            def crash() -> dict[str, Any]:
                kill_redis(redis)
                time.sleep(down)
                redis.start()
                return {"down_seconds": down}

            try:
                return _run(app, stack, audio, before, after, crash, timeout)
            finally:
                app.close()
    finally:
        redis.stop()


def kill_redis(redis: RedisServer) -> None:
    """SIGKILL a :class:`RedisServer` (a crash or an OOM kill); :meth:`RedisServer.start` brings it back."""
    assert redis.process is not None
    redis.process.kill()
    redis.process.wait()
    redis.process = None
