"""What the worker does with the jobs a lost broker connection stranded, against a real Redis,
kombu's real Redis transport and (for the start check) a real worker.

The requeue step's commands must never travel on the consumer channel's connection: kombu
pins it to the asynchronous BRPOP, whose handler reads the next reply on it as BRPOP's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from celery import Celery
from kombu import Exchange, Producer, Queue

from producer import Client
from producer.local import LocalStack, RedisServer
from tests.helpers import audio_file, wait_for_log, worker_log
from worker.runtime import connections, recovery

pytestmark = pytest.mark.integration


@pytest.fixture()
def app(redis_server_binary: str) -> Iterator[Celery]:
    server = RedisServer().start()
    app = Celery(broker=server.url, backend=server.url, set_as_current=False)
    app.conf.broker_transport_options = {"visibility_timeout": 3600}
    try:
        yield app
    finally:
        recovery._received.clear()
        recovery._unheld.clear()
        connections.reset()
        app.close()
        server.stop()


def consuming(app: Celery) -> tuple[Any, list[Any]]:
    """A consumer's channel on queue ``asr`` with its BRPOP in flight, as the worker's event loop holds it."""
    connection = app.connection_for_read()
    channel = connection.channel()
    queue = Queue("asr", Exchange("asr", type="direct"), routing_key="asr", channel=channel)
    queue.declare()
    got: list[Any] = []
    channel.basic_consume("asr", False, got.append, "test-consumer")
    connection.transport.cycle._register_BRPOP(channel)  # what the event loop does: BRPOP sent
    return channel, got


def take(app: Celery, job_id: str) -> str:
    """Publish ``job_id`` and take it unacked on a channel of its own; return its delivery tag."""
    channel = app.connection_for_read().channel()
    queue = Queue("asr", Exchange("asr", type="direct"), routing_key="asr", channel=channel)
    queue.declare()
    Producer(channel).publish({"job": job_id}, exchange="asr", routing_key="asr", headers={"id": job_id})
    message = queue.get(no_ack=False)
    assert message is not None
    # Received by this worker on a connection since lost, then stranded.
    recovery._received[str(message.delivery_tag)] = (job_id, channel)
    return str(message.delivery_tag)


def reconnect(app: Celery, channel: Any) -> None:
    """The requeue step starting on a (re)connection, with the consumer's channel."""
    consumer = SimpleNamespace(
        app=app,
        task_consumer=SimpleNamespace(channel=channel),
        timer=SimpleNamespace(call_repeatedly=lambda *_: None),
    )
    step = recovery.RestoreOrphanedJobs.__new__(recovery.RestoreOrphanedJobs)
    step._tref = None
    step.start(consumer)  # the first look: the job is seen unheld
    recovery.settle(channel, connections.broker_client(app), app)  # the next look settles it


def test_a_stranded_job_is_requeued_without_a_word_on_the_consumer_s_brpop_connection(app: Celery):
    tag = take(app, "job-1")
    channel, got = consuming(app)
    reconnect(app, channel)
    # The BRPOP in flight gets the requeued job, and its reply is read as BRPOP's: no
    # TypeError("'int' object is not iterable") from a reply that belonged to another command.
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        try:
            channel._brpop_read()
        except channel.connection_errors:
            raise
        except Exception as exc:
            if type(exc).__name__ != "Empty":
                raise
            channel._brpop_start()
    assert [m.headers["id"] for m in got] == ["job-1"]
    assert got[0].delivery_info.get("redelivered") or json.loads(got[0].body)  # the same message
    assert tag not in recovery._received


def test_a_stranded_job_whose_result_is_stored_success_is_acknowledged_not_requeued(app: Celery):
    tag = take(app, "job-done")
    app.backend.store_result("job-done", {"text": "stored before the connection dropped"}, "SUCCESS")
    channel, _ = consuming(app)
    client = app.connection_for_write().channel().client
    reconnect(app, channel)
    assert client.llen("asr") == 0, "not requeued"
    assert not client.hexists(channel.unacked_key, tag), "acknowledged"
    assert app.AsyncResult("job-done").result == {"text": "stored before the connection dropped"}


def test_a_job_started_again_after_its_success_was_stored_is_not_run_again(stack: LocalStack):
    # A job whose first run stored SUCCESS and whose ack was then lost, handed out again by a
    # path that does not mark it redelivered (so Celery's own deduplication does not see it).
    with Client(stack.url, stack.url) as client:
        job_id = "already-done-" + str(time.time_ns())
        stored = {"text": "the first run's transcript"}
        client.app.backend.store_result(job_id, stored, "SUCCESS")
        client.app.backend.client.set(f"asr:deliveries:{job_id}:0", 1)  # its first start, counted
        client.app.send_task(
            "asr.transcribe", args=[str(audio_file("jfk.flac"))], task_id=job_id, queue=client.queue
        )
        wait_for_log(stack, f"job {job_id} already succeeded: not run again", timeout=120)
        assert client.app.AsyncResult(job_id).result == stored
        assert f"asr.transcribe[{job_id}] succeeded" not in worker_log(stack)


def test_a_piece_s_progress_report_that_meets_a_dead_redis_is_skipped_and_the_piece_goes_on(
    redis_server_binary: str,
):
    # A fan-out piece reports progress through the backend's Redis; a report during a Redis
    # restart raised ConnectionError, failed the piece and so the whole job's chord.
    from worker.tasks.fanout import _piece_publisher

    server = RedisServer().start()
    app = Celery(broker=server.url, backend=server.url, set_as_current=False)
    try:
        publish = _piece_publisher(app.backend, "split-job", 0, 2, 120.0)
        assert publish is not None
        publish(10.0, 60.0)  # Redis up: published
        assert app.backend.client.hget("asr:fanout:split-job", "0") == b"10.0"
        server.stop(keep_data=True)
        publish(20.0, 60.0)  # Redis down: skipped, no error
    finally:
        app.close()
        server.stop()
