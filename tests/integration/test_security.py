"""JSON only (a pickled message never runs), and broker passwords never leak."""

from __future__ import annotations

import json
import os
import secrets
import uuid
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Queue

from producer import BrokerUnavailableError, Client, TranscriptionFailed
from producer.local import LocalStack, RedisServer
from tests.helpers import audio_file, wait_for_log, worker_log

pytestmark = pytest.mark.integration


class _Payload:
    """Unpickling this would run a shell command that leaves a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickled_message_is_refused_and_never_executed(stack: LocalStack, client: Client, tmp_path: Path):
    marker = tmp_path / "pwned"
    task_id = str(uuid.uuid4())
    with Connection(stack.url) as connection:
        producer = connection.Producer()
        producer.publish(
            ([_Payload(marker)], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}),
            serializer="pickle",
            exchange="asr",
            routing_key="asr",
            declare=[Queue("asr", Exchange("asr"), "asr")],
            headers={"lang": "py", "task": "asr.transcribe", "id": task_id, "root_id": task_id},
        )
    wait_for_log(stack, "Refusing to deserialize untrusted content of type pickle", 20)
    assert not marker.exists(), "the pickled payload must never be unpickled"
    assert "country" in client.transcribe(audio_file("jfk.flac"), timeout=120)["text"], (
        "the worker still serves"
    )


def test_a_password_protected_redis_works_and_the_password_never_leaks(tmp_path: Path):
    password = "pw-" + secrets.token_hex(12)
    redis = RedisServer(password=password).start()
    try:
        with LocalStack(redis_url=redis.url, log_path=tmp_path / "worker.log") as stack:
            client = Client(redis.url, redis.url)
            result = client.transcribe(audio_file("jfk.flac"), timeout=120)
            with pytest.raises(TranscriptionFailed) as caught:
                client.transcribe(tmp_path / "missing.wav", timeout=60)
            client.close()
            log = worker_log(stack)
        assert "country" in result["text"]
        assert "redis://:**@127.0.0.1" in log, "Celery's banner shows the broker with the password masked"
        assert password not in log
        assert password not in json.dumps(result)
        assert password not in str(caught.value)
    finally:
        redis.stop()


def test_a_wrong_password_is_reported_without_the_password(tmp_path: Path):
    redis = RedisServer(password="right-" + secrets.token_hex(8)).start()
    try:
        wrong = f"redis://:wrong-{secrets.token_hex(8)}@127.0.0.1:{redis.port}/0"
        client = Client(wrong, wrong)
        with pytest.raises(BrokerUnavailableError) as caught:
            client.submit(audio_file("jfk.flac"))
        client.close()
        assert "wrong-" not in str(caught.value)
        # The one mask_url (asr_protocol.redact) shows where, never who: no user, no password.
        assert f"redis://127.0.0.1:{redis.port}/0" in str(caught.value)
    finally:
        redis.stop()


def test_the_worker_log_holds_a_summary_of_each_job_not_its_transcript(stack: LocalStack, client: Client):
    job = client.submit(audio_file("jfk.flac"))
    text = job.result(timeout=120)["text"]
    summary = f"asr.transcribe[{job.id}]: 11.0 s of audio"
    log = wait_for_log(stack, summary, 20)
    assert f"Task asr.transcribe[{job.id}] succeeded in" in log, "Celery's success line stays, shortened"
    assert "ask not what your country" in text.lower()
    assert "what your country" not in log.lower(), "a transcript is private: never in the worker's log"
