"""RabbitMQ as the broker, end to end: the machine's RabbitMQ (a fresh vhost per test, deleted
after), real workers, the real model and real audio; results in a private Redis.

The RabbitMQ twins of the Redis integration tests: jobs (and a plain Celery client), fan-out,
clip batching, cancel, webhooks, the HTTP API, the CLI, the delivery cap's dead-letter queue,
and a whole worker node SIGKILLed (``python -m bench.faults rabbitmq-node-loss`` runs it
larger). The rest of the integration suite runs on Redis only: it tests the worker and the
producer, which do not depend on the broker, or Redis's own mechanisms (Sentinel failover,
the node-loss sweep, stranded-job recovery).
"""

from __future__ import annotations

import gc
import json
import os
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from celery import Celery

from evaluation import rabbitmq
from evaluation.audio import SEQUENTIAL, concatenate
from evaluation.faults import speech_file
from evaluation.rabbitmq import first_message, queue_info
from evaluation.rabbitmq_faults import worker_node_loss
from producer import Client
from producer.api.local import ApiServer, server_env
from producer.local import LocalStack
from tests.helpers import (
    audio_file,
    job_failure,
    load_verifier,
    rabbit_stack,
    run_module,
    wait_until,
    worker_log,
)

pytestmark = pytest.mark.integration

CLIP_ENV = {"CELERY_WORKER_PREFETCH_MULTIPLIER": "8", "ASR_CLIP_BATCH": "8", "ASR_CLIP_WAIT": "1.0"}


@pytest.fixture()
def rabbit(tmp_path: Path, redis_server_binary: str) -> Iterator[LocalStack]:
    with rabbit_stack(tmp_path, **CLIP_ENV) as running:
        yield running
        # Results polled here unsubscribe as they are collected: collect them while Redis runs.
        gc.collect()


@pytest.fixture()
def rclient(rabbit: LocalStack) -> Iterator[Client]:
    with Client(rabbit.broker_url, rabbit.url) as c:
        yield c


@pytest.fixture(scope="module")
def long_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """jfk.flac 8 times (88 s): several seconds of work for the sequential decoder."""
    return concatenate(audio_file("jfk.flac"), 8, tmp_path_factory.mktemp("long") / "jfk_x8.wav")


@pytest.fixture(scope="module")
def held_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """jfk.flac 40 times (480 s), sent with fan-out off: one sequential job of half a minute or more
    on an idle machine, so a job caught running is still running when the test acts on it (the
    88 s file ended within 6 s, at times before the cancel). Every job on it is cancelled or killed."""
    return concatenate(audio_file("jfk.flac"), 40, tmp_path_factory.mktemp("held") / "jfk_x40.wav")


HELD = {**SEQUENTIAL, "fanout_seconds": 0}


def _running(client: Client, job_id: str, timeout: float = 60) -> None:
    wait_until(lambda: client.status(job_id).state == "PROGRESS", timeout, f"job {job_id} never started")


def test_jobs_run_from_quorum_queues_and_a_plain_celery_client_is_served(rabbit: LocalStack, rclient):
    result = rclient.transcribe(audio_file("jfk.flac"), timeout=120)
    assert "country" in result["text"]
    # A Celery client that knows nothing of this project: the queues exist, so it does not declare.
    plain = Celery(broker=rabbit.broker_url, backend=rabbit.url, set_as_current=False)
    plain.conf.broker_transport_options = {"confirm_publish": True}
    sent = plain.send_task("asr.transcribe", args=[str(audio_file("jfk.flac"))], declare=[])
    assert "country" in sent.get(timeout=120)["text"]
    plain.close()
    for name in ("asr", "celery"):
        info = queue_info(name, rabbit.broker_url, "type", "arguments")
        assert info["type"] == "quorum", (name, info)
        assert '"x-delivery-limit",3' in info["arguments"].replace(" ", ""), info
        assert queue_info(f"{name}.dead-letter", rabbit.broker_url, "type")["type"] == "quorum"
    log = worker_log(rabbit)
    # The Redis-only mechanisms are off: no liveness record, no sweep, no error loop.
    assert "liveness record" not in log and "node-loss" not in log.lower(), log[-3000:]
    assert "Traceback" not in log


def test_a_long_file_fans_out_and_clips_are_batched(rclient: Client, long_file: Path):
    merged = rclient.transcribe(long_file, fanout_seconds=60, timeout=300)
    assert len(merged["pieces"]) == 2 and merged["text"].count("country") >= 7  # 88 s in pieces of <= 60 s
    clips = [audio_file("jfk.flac")] * 4
    batched = [job.result(timeout=180) for job in rclient.submit_many(clips, batch=True)]
    assert all("country" in r["text"] for r in batched)
    assert any(r["decoder"] == "batched" for r in batched), [r["decoder"] for r in batched]


def test_queued_and_running_jobs_are_cancelled(tmp_path: Path, redis_server_binary: str, held_file: Path):
    with (
        rabbit_stack(tmp_path, concurrency=1, ASR_BATCH_SIZE="1") as stack,
        Client(stack.broker_url, stack.url) as client,
    ):
        running = client.submit(held_file, **HELD)
        queued = client.submit(audio_file("jfk.flac"))
        _running(client, running.id)
        assert client.cancel(queued.id).state == "REVOKED"
        assert client.cancel(running.id).state == "REVOKED"
        wait_until(lambda: "terminated" in str(client.status(running.id).error), 30, "child not killed")
        assert "country" in client.transcribe(audio_file("jfk.flac"), timeout=120)["text"]
        assert client.status(queued.id).state == "REVOKED", "the queued job never ran"
        assert f"Task asr.transcribe[{queued.id}] succeeded" not in worker_log(stack)


class _Receiver:
    """A real HTTP server on 127.0.0.1 answering 500 to the first POST, then 200; keeps each POST."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(500 if len(receiver.posts) == 1 else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_a_webhook_is_posted_and_retried_through_rabbitmq(tmp_path: Path, redis_server_binary: str):
    receiver = _Receiver()
    secret = "rabbit-webhook-secret-5d1c"
    env = {
        "ASR_WEBHOOK_ALLOWED_HOSTS": f"127.0.0.1:{receiver.port}",
        "ASR_WEBHOOK_SECRET": secret,
        "ASR_WEBHOOK_BACKOFF_SECONDS": "0.2",
    }
    verify = load_verifier()
    try:
        with rabbit_stack(tmp_path, **env) as stack, Client(stack.broker_url, stack.url) as client:
            # The 500 makes the delivery task retry with a countdown, through the quorum queue.
            job = client.submit(audio_file("jfk.flac"), callback_url=f"http://127.0.0.1:{receiver.port}/hook")
            result = job.result(timeout=120)
            wait_until(lambda: len(receiver.posts) >= 2, 60, "the webhook was not retried")
            for headers, body in receiver.posts:
                assert verify(secret, body, headers["x-asr-timestamp"], headers["x-asr-signature"])
            assert json.loads(receiver.posts[-1][1])["result"] == result
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


def test_the_http_api_and_the_cli_submit_through_rabbitmq(rabbit: LocalStack, tmp_path: Path):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    env = server_env(uploads, CELERY_BROKER_URL=rabbit.broker_url)
    with ApiServer(rabbit.url, tmp_path / "api.log", **env) as api:
        with open(audio_file("jfk.flac"), "rb") as audio:
            answer = httpx.post(
                f"{api.url}/v1/audio/transcriptions",
                headers={"Authorization": "Bearer test-key-1"},
                files={"file": ("jfk.flac", audio)},
                data={"model": "whisper-1"},
                timeout=120,
            )
        assert answer.status_code == 200, answer.text
        assert "country" in answer.json()["text"]
    done = run_module(
        "producer", str(audio_file("jfk.flac")), "--wait", redis_url=rabbit.url, broker_url=rabbit.broker_url
    )
    assert done.returncode == 0, done.stderr
    assert "country" in done.stdout


def test_a_job_over_the_delivery_cap_is_dead_lettered_with_its_error(
    tmp_path: Path, redis_server_binary: str, held_file: Path
):
    # Stands in for a file that crashes the decoder: its child is SIGKILLed while it runs.
    with (
        rabbit_stack(tmp_path, concurrency=1, ASR_MAX_DELIVERIES="1", ASR_BATCH_SIZE="1") as stack,
        Client(stack.broker_url, stack.url) as client,
    ):
        job = client.submit(held_file, **HELD)
        _running(client, job.id)
        [child] = stack.child_pids()
        os.kill(child, signal.SIGKILL)
        failed = job_failure(job)
        assert failed.error_type == "RedeliveryLimitError"
        assert "started 2 times" in failed.message and "ASR_MAX_DELIVERIES=1" in failed.message
        message = wait_until(
            lambda: first_message(stack.broker_url, "asr.dead-letter"), 30, "nothing in asr.dead-letter"
        )
        assert message.headers["id"] == job.id
        assert message.headers["x-first-death-reason"] == "rejected"
        assert "country" in client.transcribe(audio_file("jfk.flac"), timeout=120)["text"], "still serving"


def test_a_whole_worker_node_killed_mid_job_its_job_succeeds_on_another(
    tmp_path: Path, redis_server_binary: str
):
    # ASR_NODE_LOSS_SECONDS=3600 in the scenario: a job back in seconds was brought back by RabbitMQ.
    if rabbitmq.available() or not rabbitmq.shared_server_up():
        pytest.skip(rabbitmq.available() or "no RabbitMQ on 127.0.0.1:5672")
    # 288 s of speech, decoded sequentially: still running at the kill on a fast CPU (36 s once
    # ended on the victim before it, and the job was never back).
    report = worker_node_loss(tmp_path, speech_file(24, tmp_path), per_worker=1)
    assert report["lost_jobs"] == 1 and report["all_success"], report
    assert not report["lost"] and not report["failed"] and not report["transcribed_twice"], report
    assert report["redelivered"] == 1, report
    assert 0 <= report["requeued_after_s"] < 30, report  # at once: not after ASR_NODE_LOSS_SECONDS
