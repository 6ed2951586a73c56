"""The info command and task: real workers report their children's loaded models."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from evaluation.audio import SEQUENTIAL, concatenate
from producer import Client
from producer.local import PROJECT_ROOT, LocalStack, RedisServer, free_port
from producer.ops import worker_info
from tests.helpers import audio_file, run_module, wait_until, worker_log

pytestmark = pytest.mark.integration

BANNER = re.compile(r"worker pid\s*:\s*(\d+)\s+load time\s*:\s*([\d.]+) s\s+warm-up time\s*:\s*([\d.]+) s")


def node_name(stack: LocalStack) -> str:
    return stack.hostname.replace("%h", socket.gethostname())


def expected_versions() -> dict[str, str]:
    return {
        "faster_whisper": metadata.version("faster-whisper"),
        "ctranslate2": metadata.version("ctranslate2"),
        "celery": metadata.version("celery"),
    }


def reported(client: Client, node: str, children: int, timeout: float = 60) -> dict[str, Any]:
    """The node's ``asr_info`` reply once all its children have loaded and reported."""

    def complete() -> dict[str, Any] | None:
        reply = worker_info(client, timeout=1).get(node)
        if reply and len(reply["children"]) == children and all(c["model"] for c in reply["children"]):
            return reply
        return None

    return wait_until(complete, timeout, f"children of {node} did not report", interval=0.2)


def run_cli(url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run_module("producer.ops_cli", *args, redis_url=url, timeout=timeout)


def test_info_command_reports_each_live_child_and_its_loaded_model(client: Client, stack: LocalStack):
    node = node_name(stack)
    reported(client, node, 2)
    replies = worker_info(client, timeout=2)
    assert list(replies) == [node]
    reply = replies[node]
    assert reply["pid"] == stack.worker.pid, "the main process answers"
    assert reply["queues"] == ["asr", "celery"]
    assert reply["versions"] == expected_versions()

    children = {child["pid"]: child for child in reply["children"]}
    assert set(children) == set(stack.child_pids()) and len(children) == 2
    assert stack.worker.pid not in children
    # The load and warm-up times are the ones each child logged in its own banner.
    banners = {int(pid): (float(load), float(warm)) for pid, load, warm in BANNER.findall(worker_log(stack))}
    for pid, child in children.items():
        model = child["model"]
        assert child["hostname"] == node and child["queues"] == ["asr", "celery"]
        assert child["versions"] == expected_versions()
        assert model["loaded"] is True and model["worker_pid"] == pid
        assert (model["model_id"], model["device"], model["compute_type"]) == ("tiny.en", "cpu", "int8")
        assert model["load_seconds"] > 0 and model["warmup_seconds"] > 0
        assert model["load_seconds"] == pytest.approx(banners[pid][0], abs=0.006)
        assert model["warmup_seconds"] == pytest.approx(banners[pid][1], abs=0.006)


def test_info_answers_at_once_while_every_child_is_busy(client: Client, stack: LocalStack, tmp_path):
    # 16 copies of jfk.flac with 1 s pauses: 192 s of real speech per job, one job per child, on
    # the sequential decoder: many seconds of work, far longer than the 2 s broadcast.
    long_file = concatenate(audio_file("jfk.flac"), 16, tmp_path / "jfk_x16.wav")
    jobs = client.submit_many([long_file, long_file], **SEQUENTIAL)
    wait_until(lambda: all(job.state == "PROGRESS" for job in jobs), 60, [job.state for job in jobs])
    asked = time.monotonic()
    replies = worker_info(client, timeout=2)
    answered = time.monotonic() - asked
    assert all(job.state == "PROGRESS" for job in jobs), "both children were still busy"
    children = replies[node_name(stack)]["children"]
    assert len(children) == 2 and all(child["model"]["loaded"] for child in children)
    assert answered < 3, "the broadcast waits its timeout, not for the jobs"
    for job in jobs:
        assert job.result(timeout=180)["duration"] == pytest.approx(192.0, abs=0.5)


def test_info_task_reports_the_child_that_ran_it(client: Client, stack: LocalStack):
    record = client.app.send_task("asr.info", queue=client.queue).get(timeout=60)
    assert record["hostname"] == node_name(stack)
    assert record["pid"] in stack.child_pids()
    assert record["queues"] == ["asr", "celery"]
    assert record["versions"] == expected_versions()
    assert record["model"]["loaded"] is True and record["model"]["worker_pid"] == record["pid"]
    assert record["model"]["model_id"] == "tiny.en"


def test_cli_prints_a_table_and_json(client: Client, stack: LocalStack):
    node = node_name(stack)
    reported(client, node, 2)
    table = run_cli(stack.url, "info", "--timeout", "2")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["WORKER", "PID", "QUEUES"]
    rows = [line.split() for line in lines[1:]]
    assert {int(row[1]) for row in rows} == set(stack.child_pids())
    for row in rows:
        assert row[0] == node and row[2:7] == ["asr,celery", "tiny.en", "cpu", "int8", "yes"]
        assert float(row[7]) > 0 and float(row[8]) > 0

    as_json = run_cli(stack.url, "info", "--json", "--timeout", "2")
    assert as_json.returncode == 0, as_json.stderr
    replies = json.loads(as_json.stdout)
    assert {child["pid"] for child in replies[node]["children"]} == set(stack.child_pids())


def test_cli_exit_codes_without_broker_or_workers(redis_server_binary: str):
    unreachable = run_cli(f"redis://127.0.0.1:{free_port()}/0", "info", "--timeout", "1")
    assert unreachable.returncode == 3 and "cannot reach the broker" in unreachable.stderr
    redis = RedisServer().start()
    try:
        empty = run_cli(redis.url, "info", "--timeout", "1")
    finally:
        redis.stop()
    assert empty.returncode == 1 and "no worker answered" in empty.stderr
    assert run_cli(redis.url, "bogus").returncode == 2


def test_a_recycled_child_is_replaced_in_the_report(tmp_path: Path, redis_server_binary: str):
    env = {"ASR_CACHE_DIR": str(tmp_path / "cache"), "CELERY_WORKER_MAX_TASKS_PER_CHILD": "1"}
    with LocalStack(concurrency=1, env=env, log_path=tmp_path / "worker.log") as stack:
        client = Client(stack.url, stack.url)
        try:
            node = node_name(stack)
            (first,) = reported(client, node, 1)["children"]
            # One job, then the child exits (max tasks per child = 1) and a new one loads.
            ran = client.app.send_task("asr.info", queue=client.queue).get(timeout=60)
            assert ran["pid"] == first["pid"]

            def replaced() -> dict[str, Any] | None:
                (child,) = reported(client, node, 1)["children"]
                return child if child["pid"] != first["pid"] else None

            child = wait_until(replaced, 60, "the child was not replaced", interval=0.2)
            assert child["pid"] == stack.child_pids()[0]
            assert child["model"]["loaded"] is True and child["model"]["worker_pid"] == child["pid"]
        finally:
            client.close()


def test_celery_inspect_reaches_the_command(client: Client, stack: LocalStack):
    # `celery inspect` knows only the commands its own process imported:
    # worker.celery imports worker.tasks.info.
    node = node_name(stack)
    reported(client, node, 2)
    env = {**os.environ, "REDIS_URL": stack.url}
    env.pop("CELERY_BROKER_URL", None)
    env.pop("CELERY_RESULT_BACKEND", None)
    command = [sys.executable, "-m", "celery", "-A", "worker", "inspect", "asr_info", "--json"]
    done = subprocess.run(
        [*command, "--timeout", "2"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)[node]
    assert {child["pid"] for child in reply["children"]} == set(stack.child_pids())
    assert all(child["model"]["loaded"] for child in reply["children"])
