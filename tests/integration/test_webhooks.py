"""Completion webhooks end to end: a real HTTP receiver, real Redis, a real worker, real jobs.

Every request is verified with the receiver code that docs/results.md shows.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from evaluation.audio import SEQUENTIAL, concatenate
from producer import Client, TranscriptionFailed
from producer.local import LocalStack, free_port
from tests.helpers import audio_file, load_verifier, never, wait_for_log, wait_until, worker_log, worker_stack

pytestmark = pytest.mark.integration

SECRET = "integration-test-secret-7f3a"
MAX_ATTEMPTS = 4  # not the default 5: proves ASR_WEBHOOK_MAX_ATTEMPTS is read
BACKOFF = 0.2
verify_webhook = load_verifier()
#: Allowed too, but nothing listens there: every attempt is refused at connect.
DEAD_PORT = free_port()


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  #: lower-cased names
    body: bytes
    at: float

    @property
    def payload(self) -> dict:
        return json.loads(self.body)

    def signed(self) -> bool:
        return verify_webhook(
            SECRET, self.body, self.headers["x-asr-timestamp"], self.headers["x-asr-signature"]
        )


class Receiver:
    """A real HTTP server on 127.0.0.1 that records every POST and answers from a script per path."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._scripts: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    # Header names are case-insensitive: keep them lower-cased.
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.requests.append(Received(self.path, headers, body, time.monotonic()))
                    script = receiver._scripts.get(self.path, [200])
                    status = script.pop(0) if len(script) > 1 else script[0]
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, name: str, *answers: int) -> tuple[str, str]:
        """A fresh path that answers ``answers`` in turn (the last one from then on)."""
        path = f"/hooks/{name}-{uuid.uuid4().hex[:8]}"
        self._scripts[path] = list(answers or [200])
        return f"http://127.0.0.1:{self.port}{path}", path

    def received(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 60.0) -> list[Received]:
        try:
            wait_until(lambda: len(self.received(path)) >= count, timeout, "")
        except AssertionError:
            pass  # the caller asserts on what arrived
        return self.received(path)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


@pytest.fixture(scope="module")
def hook_stack(
    receiver: Receiver, tmp_path_factory: pytest.TempPathFactory, redis_server_binary: str
) -> Iterator[LocalStack]:
    env = {
        "ASR_WEBHOOK_ALLOWED_HOSTS": f"127.0.0.1:{receiver.port},127.0.0.1:{DEAD_PORT}",
        "ASR_WEBHOOK_SECRET": SECRET,
        "ASR_WEBHOOK_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "ASR_WEBHOOK_BACKOFF_SECONDS": str(BACKOFF),
        "ASR_WEBHOOK_TIMEOUT": "5",
    }
    with worker_stack(tmp_path_factory, "webhook-worker", **env) as running:
        yield running


@pytest.fixture()
def hook_client(hook_stack: LocalStack) -> Iterator[Client]:
    with Client(hook_stack.url, hook_stack.url) as c:
        yield c


def test_a_finished_job_posts_its_signed_result(hook_client: Client, hook_stack: LocalStack, receiver):
    url, path = receiver.url("ok")
    job = hook_client.submit(audio_file("jfk.flac"), callback_url=url)
    result = job.result(timeout=120)
    [request] = receiver.wait_for(path, 1)
    assert request.signed(), "X-ASR-Signature verifies with the documented receiver code"
    assert abs(int(request.headers["x-asr-timestamp"]) - time.time()) < 60
    assert request.headers["content-type"].startswith("application/json")
    payload = request.payload
    assert set(payload) == {"task_id", "state", "result", "error", "timestamp"}
    assert (payload["task_id"], payload["state"], payload["error"]) == (job.id, "SUCCESS", None)
    assert payload["result"] == result, "the webhook carries the stored result"
    assert abs(payload["timestamp"] - time.time()) < 60
    assert SECRET not in worker_log(hook_stack)


def test_a_receiver_answering_500_twice_gets_three_attempts(hook_client: Client, hook_stack, receiver):
    url, path = receiver.url("flaky", 500, 500, 200)
    job = hook_client.submit(audio_file("jfk.flac"), callback_url=url)
    job.result(timeout=120)
    attempts = receiver.wait_for(path, 3)
    never(lambda: len(receiver.received(path)) > 3, 2.0, "a 4th attempt after the 200")  # would come in 0.8 s
    assert all(a.signed() for a in attempts), "each attempt is signed afresh"
    assert len({a.body for a in attempts}) == 1, "every attempt sends the same payload"
    gaps = [b.at - a.at for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= BACKOFF * 0.9 and gaps[1] >= 2 * BACKOFF * 0.9, f"exponential backoff: {gaps}"
    assert f"webhook for job {job.id} to http://127.0.0.1:{receiver.port}{path}: attempt 1 of" in (
        worker_log(hook_stack)
    )


def test_a_dead_receiver_gets_max_attempts_then_an_error_and_the_job_is_intact(
    hook_client: Client, hook_stack: LocalStack, receiver
):
    url, path = receiver.url("down", 500)
    job = hook_client.submit(audio_file("jfk.flac"), callback_url=url)
    text = job.result(timeout=120)["text"]
    receiver.wait_for(path, MAX_ATTEMPTS)
    wait_until(
        lambda: f"gave up after {MAX_ATTEMPTS} attempts" in worker_log(hook_stack), 10, "no error was logged"
    )
    assert len(receiver.received(path)) == MAX_ATTEMPTS, "no attempt after it gave up"
    line = next(
        ln
        for ln in worker_log(hook_stack).splitlines()
        if f"webhook for job {job.id}" in ln and "gave up" in ln
    )
    assert "ERROR" in line and "HTTP 500" in line
    later = hook_client.job(job.id)
    assert later.state == "SUCCESS" and later.result(timeout=1)["text"] == text


def test_an_unreachable_receiver_is_retried_like_a_5xx(hook_client: Client, hook_stack: LocalStack):
    job = hook_client.submit(audio_file("jfk.flac"), callback_url=f"http://127.0.0.1:{DEAD_PORT}/hook")
    job.result(timeout=120)
    gave_up = f"webhook for job {job.id} to http://127.0.0.1:{DEAD_PORT}/hook gave up after {MAX_ATTEMPTS}"
    wait_until(lambda: gave_up in worker_log(hook_stack), 30, "the delivery never gave up")
    failed = [ln for ln in worker_log(hook_stack).splitlines() if f"webhook for job {job.id}" in ln]
    assert len(failed) == MAX_ATTEMPTS and all("Connection refused" in ln for ln in failed), failed
    assert hook_client.job(job.id).state == "SUCCESS"


def test_a_4xx_answer_is_not_retried(hook_client: Client, hook_stack: LocalStack, receiver):
    url, path = receiver.url("gone", 410)
    job = hook_client.submit(audio_file("jfk.flac"), callback_url=url)
    job.result(timeout=120)
    receiver.wait_for(path, 1)
    refused = f"webhook for job {job.id}: http://127.0.0.1:{receiver.port}{path} refused it (HTTP 410)"
    wait_for_log(hook_stack, refused, 30)
    never(lambda: len(receiver.received(path)) > 1, 1.5, "a 410 was retried")


def test_a_failed_job_posts_failure_with_its_error_type(hook_client: Client, receiver, tmp_path: Path):
    url, path = receiver.url("failed")
    missing = tmp_path / "missing.wav"
    job = hook_client.submit(missing, callback_url=url)
    with pytest.raises(TranscriptionFailed) as caught:
        job.result(timeout=60)
    assert caught.value.error_type == "AudioNotFoundError"
    [request] = receiver.wait_for(path, 1)
    assert request.signed()
    payload = request.payload
    assert (payload["task_id"], payload["state"], payload["result"]) == (job.id, "FAILURE", None)
    assert payload["error"]["type"] == "AudioNotFoundError"
    assert str(missing) in payload["error"]["message"]


def test_a_cancelled_job_posts_revoked(hook_client: Client, receiver, tmp_path: Path):
    url, path = receiver.url("cancelled")
    # 192 s of speech on the sequential decoder: about 10 s of work, cancelled long before.
    long_file = concatenate(audio_file("jfk.flac"), 16, tmp_path / "jfk_x16.wav")
    job = hook_client.submit(long_file, callback_url=url, **SEQUENTIAL)
    wait_until(lambda: job.state == "PROGRESS", 60, "the job never started")
    assert hook_client.cancel(job.id).state == "REVOKED"
    [request] = receiver.wait_for(path, 1)
    assert request.signed()
    payload = request.payload
    assert (payload["task_id"], payload["state"], payload["result"]) == (job.id, "REVOKED", None)
    assert payload["error"] == {"type": "TaskRevokedError", "message": "terminated"}


def test_a_cancelled_split_job_posts_revoked_once(hook_client: Client, receiver, tmp_path: Path):
    url, path = receiver.url("cancelled-split")
    long_file = concatenate(audio_file("jfk.flac"), 16, tmp_path / "jfk_x16.wav")
    job = hook_client.submit(long_file, callback_url=url, fanout_seconds=60, **SEQUENTIAL)
    wait_until(lambda: (job.progress or {}).get("pieces"), 60, "the job was never split")
    assert hook_client.cancel(job.id).state == "REVOKED"
    [request] = receiver.wait_for(path, 1)
    assert request.signed()
    payload = request.payload
    assert (payload["task_id"], payload["state"], payload["result"]) == (job.id, "REVOKED", None)
    assert payload["error"] == {"type": "TaskRevokedError", "message": "cancelled while split into pieces"}
    never(lambda: len(receiver.received(path)) > 1, 2.0, "one webhook for the job, none for its pieces")
    assert hook_client.status(job.id).state == "REVOKED"


def test_a_callback_url_on_another_host_fails_the_job(hook_client: Client, receiver):
    # localhost reaches the same receiver, but only 127.0.0.1:<port> is allowed.
    url, path = receiver.url("other-host")
    job = hook_client.submit(audio_file("jfk.flac"), callback_url=url.replace("127.0.0.1", "localhost"))
    with pytest.raises(TranscriptionFailed) as caught:
        job.result(timeout=60)
    assert caught.value.error_type == "InvalidOptionsError"
    assert "ASR_WEBHOOK_ALLOWED_HOSTS" in caught.value.message
    never(lambda: receiver.received(path), 1.0, "a webhook to a host not allowed")


def test_a_worker_without_allowed_hosts_refuses_webhooks(client: Client):
    job = client.submit(audio_file("jfk.flac"), callback_url="http://127.0.0.1:9/hook")
    with pytest.raises(TranscriptionFailed) as caught:
        job.result(timeout=60)
    assert caught.value.error_type == "InvalidOptionsError"
    assert "ASR_WEBHOOK_ALLOWED_HOSTS is empty" in caught.value.message
