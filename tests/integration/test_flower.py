"""Flower against a real stack, over real HTTP: monitoring, auth, metrics, progress and HTTP enqueue.

Flower runs as ``python -m celery -A worker flower`` from the checkout, the way
docs/operations.md starts it, with basic auth and a persistent state file.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from evaluation.audio import SEQUENTIAL, concatenate
from producer import Client
from producer.local import LocalStack
from tests.helpers import Flower, audio_file, start_flower, task_result, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def flower(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flower]:
    folder = tmp_path_factory.mktemp("flower")
    running = start_flower(stack.url, folder / "flower.db", folder / "flower.log")
    yield running
    running.stop()


def node_name(stack: LocalStack) -> str:
    return stack.hostname.replace("%h", socket.gethostname())


def flower_info(flower: Flower, task_id: str) -> dict[str, Any]:
    """``GET /api/task/info/<id>``: what Flower knows from the workers' events ({} if nothing)."""
    reply = flower.get(f"/api/task/info/{task_id}")
    return reply.json() if reply.status_code == 200 else {}


def flower_state(flower: Flower, task_id: str) -> str | None:
    return flower_info(flower, task_id).get("state")


def test_the_api_refuses_requests_without_credentials(flower: Flower):
    assert flower.get("/api/workers", auth=None).status_code == 401
    assert flower.get("/api/workers", auth=("ops", "wrong")).status_code == 401
    assert flower.get("/api/tasks", auth=None).status_code == 401
    enqueue = flower.post("/api/task/async-apply/asr.transcribe", auth=None, json={"args": ["/x.flac"]})
    assert enqueue.status_code == 401
    assert flower.get("/", auth=None).status_code == 401


def test_workers_are_listed(flower: Flower, stack: LocalStack):
    node = node_name(stack)

    def listed() -> dict[str, Any] | None:
        reply = flower.get("/api/workers", params={"refresh": "1"})
        assert reply.status_code == 200
        return reply.json().get(node)

    worker = wait_until(listed, 30, f"{node} was not listed")
    assert [q["name"] for q in worker["active_queues"]] == ["asr", "celery"]
    assert sorted(worker["stats"]["pool"]["processes"]) == sorted(stack.child_pids())
    assert "asr.transcribe" in worker["registered"]


def test_a_finished_job_shows_success_and_its_result(flower: Flower, client: Client, stack: LocalStack):
    job = client.submit(audio_file("jfk.flac"))
    result = job.result(timeout=120)

    # /api/task/info comes from the workers' events; its result is a repr of the return value.
    wait_until(lambda: flower_state(flower, job.id) == "SUCCESS", 30, "Flower did not see the task succeed")
    info = flower_info(flower, job.id)
    assert info["name"] == "asr.transcribe" and info["worker"] == node_name(stack)
    assert "country" in info["result"] and info["runtime"] > 0
    # /api/task/result reads the result backend: the whole JSON result.
    backend = flower.get(f"/api/task/result/{job.id}").json()
    assert backend["state"] == "SUCCESS" and backend["result"] == result


def test_metrics_are_served_without_credentials(flower: Flower, client: Client):
    client.transcribe(audio_file("jfk.flac"), timeout=120)
    # Flower 2.2 serves /metrics and /healthcheck without auth, even with --basic-auth.
    metrics = flower.get("/metrics", auth=None)
    assert metrics.status_code == 200
    names = {line.split("{")[0].split(" ")[0] for line in metrics.text.splitlines() if line[:1] != "#"}
    # flower_worker_online appears only once Flower has seen a worker-online event, which a
    # worker started before this Flower sent before it listened; task series are certain.
    assert {"flower_events_total", "flower_task_runtime_seconds_bucket"} <= names
    assert 'type="task-succeeded"' in metrics.text
    assert flower.get("/healthcheck", auth=None).text == "OK"


def test_progress_of_a_running_job_is_visible(
    flower: Flower, client: Client, stack: LocalStack, tmp_path: Path
):
    # 8 copies of jfk.flac with 1 s pauses: 96 s of real speech.
    long_file = concatenate(audio_file("jfk.flac"), 8, tmp_path / "jfk_x8.wav")
    job = client.submit(long_file, **SEQUENTIAL)
    store = redis.Redis.from_url(stack.url)
    backend_states, event_states, progress = [], [], []
    deadline = time.monotonic() + 180
    while not job.ready() and time.monotonic() < deadline:
        backend = flower.get(f"/api/task/result/{job.id}").json()
        backend_states.append(backend["state"])
        if backend["state"] == "PROGRESS":
            # Flower returns a result only once the task is ready: the percentage stays in Redis,
            # where a non-Python service can read it (docs/operations.md).
            assert "result" not in backend
            stored = store.get(f"celery-task-meta-{job.id}")
            meta = json.loads(stored) if stored else {}
            if meta.get("status") == "PROGRESS":
                progress.append(meta["result"])
        reply = flower.get(f"/api/task/info/{job.id}")
        if reply.status_code == 200:
            event_states.append(reply.json()["state"])
        time.sleep(0.1)
    assert job.result(timeout=1)["duration"] == pytest.approx(96.0, abs=0.5)
    # The result backend holds PROGRESS while the job runs; Flower's events only know STARTED
    # (update_state sends no event).
    assert "PROGRESS" in backend_states, backend_states
    assert "STARTED" in event_states and "PROGRESS" not in event_states, event_states
    assert progress and all(p["seconds_total"] == pytest.approx(96.0, abs=0.5) for p in progress)
    assert {"seconds_done", "seconds_total", "percent"} <= set(progress[-1])
    assert set(progress[-1]) <= {"seconds_done", "seconds_total", "percent", "text"}


def test_http_enqueue_through_flower(flower: Flower, stack: LocalStack):
    path = str(audio_file("jfk.flac").resolve())
    body = {"args": [path], "kwargs": {"language": "en", "word_timestamps": True}, "queue": "asr"}
    reply = flower.post("/api/task/async-apply/asr.transcribe", json=body)
    assert reply.status_code == 200, reply.text
    task_id = reply.json()["task-id"]

    done = task_result(flower, task_id)
    assert done["state"] == "SUCCESS", done
    result = done["result"]
    assert "country" in result["text"] and result["audio_path"] == path
    assert result["worker"]["hostname"] == node_name(stack)
    assert all("words" in segment for segment in result["segments"])


def test_http_enqueue_by_name_without_the_task_code(flower: Flower):
    # send-task publishes by name: Flower needs no worker code for it.
    path = str(audio_file("jfk.flac").resolve())
    reply = flower.post("/api/task/send-task/asr.transcribe", json={"args": [path], "queue": "asr"})
    assert reply.status_code == 200, reply.text
    done = task_result(flower, reply.json()["task-id"])
    assert done["state"] == "SUCCESS" and "country" in done["result"]["text"]


def test_http_enqueue_of_a_bad_path_reports_the_error(flower: Flower, tmp_path: Path):
    missing = str(tmp_path / "missing.flac")
    reply = flower.post("/api/task/async-apply/asr.transcribe", json={"args": [missing]})
    assert reply.status_code == 200, reply.text
    done = task_result(flower, reply.json()["task-id"])
    assert done["state"] == "FAILURE"
    assert "AudioNotFoundError" in done["result"] and missing in done["result"]
    assert done["traceback"]


def test_unknown_task_names_are_refused(flower: Flower):
    reply = flower.post("/api/task/async-apply/asr.nope", json={"args": []})
    assert reply.status_code == 404


def test_state_survives_a_flower_restart(stack: LocalStack, client: Client, tmp_path: Path):
    db, log = tmp_path / "flower.db", tmp_path / "flower.log"
    first = start_flower(stack.url, db, log)
    try:
        job = client.submit(audio_file("jfk.flac"))
        job.result(timeout=120)
        # Events arrive in order but not at once: wait for the success event itself,
        # not only for the task to be known, before the state is saved.
        wait_until(
            lambda: flower_state(first, job.id) == "SUCCESS", 30, "Flower did not see the task succeed"
        )
    finally:
        first.stop()
    # Started again, with the credentials from FLOWER_BASIC_AUTH this time.
    second = start_flower(stack.url, db, log, auth_from_env=True)
    try:
        assert second.get("/api/workers", auth=None).status_code == 401
        info = second.get(f"/api/task/info/{job.id}")
        assert info.status_code == 200, "the task is known from the saved state, not from new events"
        assert info.json()["state"] == "SUCCESS"
    finally:
        second.stop()


def test_clip_jobs_show_up_in_flower_one_by_one(flower: Flower, client: Client, tmp_path: Path):
    # Decoded in one batch, yet each job sends its own task-started and task-succeeded
    # (or task-failed) events under its own id.
    jobs = client.submit_many([audio_file("jfk.flac"), tmp_path / "missing.wav"], batch=True)
    for job, state in zip(jobs, ("SUCCESS", "FAILURE"), strict=True):
        ended = lambda job=job, state=state: flower_state(flower, job.id) == state  # noqa: E731
        wait_until(ended, 60, f"Flower did not see {job.path} end {state}")
    assert "country" in flower_info(flower, jobs[0].id)["result"]
    assert "AudioNotFoundError" in flower_info(flower, jobs[1].id)["exception"]
