"""Taking a job off Redis in one step with its holder record (worker.runtime.take).

The first tests drive kombu's consumer over the worker's transport against a real Redis (no
worker processes); the last ones SIGKILL real worker nodes while they take jobs
(evaluation/take_faults.py, also ``python -m bench.take_window``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Consumer, Exchange, Producer, Queue
from redis import StrictRedis

from evaluation.faults import speech_file
from evaluation.take_faults import frozen_then_killed, kills_while_taking
from producer.local import LocalStack, RedisServer
from tests.helpers import references, word_error_rate
from worker.runtime import liveness
from worker.runtime.liveness import holder_key, node_key
from worker.runtime.nodeloss import sweep

pytestmark = pytest.mark.integration

NODE = "celery@taker/1/aa"
TAKE = "worker.runtime.take:Transport"


@pytest.fixture()
def server(redis_server_binary: str) -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def as_node(monkeypatch: pytest.MonkeyPatch) -> str:
    """This test process plays a worker's main process, whose node id the take records."""
    monkeypatch.setattr(liveness, "_node_id", NODE)
    return NODE


def publish(url: str, ids: list[str], *, priorities: list[int] | None = None, queue: str = "asr") -> None:
    with Connection(url) as conn:
        channel = conn.channel()
        q = Queue(queue, Exchange(queue, type="direct"), routing_key=queue, channel=channel)
        q.declare()
        for i, job_id in enumerate(ids):
            priority = priorities[i] if priorities else None
            Producer(channel).publish(
                {"job": job_id}, exchange=queue, routing_key=queue, headers={"id": job_id}, priority=priority
            )


def take_all(url: str, count: int, *, transport: str | None = TAKE, ack: bool = True) -> list[Any]:
    """Consume ``count`` messages of ``asr`` with kombu's consumer over ``transport``; return them."""
    taken: list[Any] = []
    options = {"visibility_timeout": 3600}
    with Connection(url, transport=transport, transport_options=options) as conn:
        channel = conn.channel()
        queue = Queue("asr", Exchange("asr", type="direct"), routing_key="asr")

        def on_message(body: Any, message: Any) -> None:
            taken.append(message)
            if ack:
                message.ack()

        with Consumer(channel, [queue], callbacks=[on_message], prefetch_count=1):
            while len(taken) < count:
                conn.drain_events(timeout=5)
        return taken


def test_a_job_leaves_its_queue_unacked_with_its_holder_in_one_step(server: RedisServer, as_node: str):
    publish(server.url, ["job-1"])
    redis = StrictRedis.from_url(server.url)
    seen: dict[str, Any] = {}

    def look(body: Any, message: Any) -> None:
        # What Redis holds while the worker holds the job, before any worker code has run.
        tag = message.delivery_tag
        seen["queued"] = redis.llen("asr")
        seen["unacked"] = json.loads(redis.hget("unacked", tag))
        seen["score"] = redis.zscore("unacked_index", tag)
        seen["holder"] = json.loads(redis.get(holder_key(tag)))
        seen["tag"] = tag

    with Connection(server.url, transport=TAKE, transport_options={"visibility_timeout": 3600}) as conn:
        queue = Queue("asr", Exchange("asr", type="direct"), routing_key="asr")
        with Consumer(conn.channel(), [queue], callbacks=[look], prefetch_count=1):
            conn.drain_events(timeout=5)
        assert seen["queued"] == 0
        message, exchange, routing_key = seen["unacked"]  # as kombu's own QoS.append writes it
        assert message["headers"]["id"] == "job-1" and (exchange, routing_key) == ("asr", "asr")
        assert seen["holder"][0] == NODE and float(seen["holder"][1]) == seen["score"]
        # The node is gone (no liveness record): the sweep puts the job back.
        sweeper = Connection(server.url, transport_options={"visibility_timeout": 3600})
        try:
            assert sweep(sweeper.channel(), own_node="celery@other/2/bb") == ["job-1"]
        finally:
            sweeper.release()
    assert [json.loads(raw)["headers"]["id"] for raw in redis.lrange("asr", 0, -1)] == ["job-1"]


def test_jobs_are_taken_in_the_order_brpop_takes_them(server: RedisServer, as_node: str):
    ids = [f"job-{i}" for i in range(12)]
    priorities = [0, 9, 3, 6, 0, 9, 5, 1, 8, 0, 2, 7]
    publish(server.url, ids, priorities=priorities)
    ours = [m.headers["id"] for m in take_all(server.url, len(ids))]
    publish(server.url, ids, priorities=priorities)
    kombus = [m.headers["id"] for m in take_all(server.url, len(ids), transport=None)]
    assert ours == kombus
    assert sorted(ours) == sorted(ids)


def test_acks_rejects_and_requeues_work_as_kombu_s(server: RedisServer, as_node: str):
    redis = StrictRedis.from_url(server.url)
    publish(server.url, ["acked", "requeued"])
    with Connection(server.url, transport=TAKE, transport_options={"visibility_timeout": 3600}) as conn:
        queue = Queue("asr", Exchange("asr", type="direct"), routing_key="asr")
        handled: list[str] = []

        def on_message(body: Any, message: Any) -> None:
            handled.append(message.headers["id"])
            if message.headers["id"] == "acked":
                message.ack()
            else:
                message.requeue()

        with Consumer(conn.channel(), [queue], callbacks=[on_message], prefetch_count=1):
            while len(handled) < 2:
                conn.drain_events(timeout=5)
    assert sorted(handled) == ["acked", "requeued"]
    assert redis.hlen("unacked") == 0 and redis.zcard("unacked_index") == 0
    assert [json.loads(raw)["headers"]["id"] for raw in redis.lrange("asr", 0, -1)] == ["requeued"]


def test_a_consumer_that_does_not_ack_leaves_no_unacked_record(server: RedisServer, as_node: str):
    # Celery's gossip and event receivers consume so: kombu writes no unacked record for their
    # messages, and nothing would ever remove one the take wrote.
    publish(server.url, ["event-1", "event-2"])
    redis = StrictRedis.from_url(server.url)
    got: list[str] = []
    with Connection(server.url, transport=TAKE, transport_options={"visibility_timeout": 3600}) as conn:
        queue = Queue("asr", Exchange("asr", type="direct"), routing_key="asr")
        with Consumer(
            conn.channel(), [queue], callbacks=[lambda body, m: got.append(m.headers["id"])], no_ack=True
        ):
            while len(got) < 2:
                conn.drain_events(timeout=5)
    assert got == ["event-1", "event-2"]
    assert redis.hlen("unacked") == 0 and redis.zcard("unacked_index") == 0
    assert redis.keys(holder_key("*")) == []


def test_a_redis_that_refuses_scripts_is_served_with_brpop(
    server: RedisServer, as_node: str, caplog: pytest.LogCaptureFixture
):
    redis = StrictRedis.from_url(server.url)
    redis.execute_command("ACL", "SETUSER", "default", "-@scripting")
    publish(server.url, ["job-1", "job-2"])
    taken = take_all(server.url, 2)
    assert sorted(m.headers["id"] for m in taken) == ["job-1", "job-2"]
    assert redis.hlen("unacked") == 0
    assert "refused the take script" in caplog.text and "BRPOP" in caplog.text


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return speech_file(1, tmp_path_factory.mktemp("take-audio"))  # jfk.flac: 11 s of real speech


def test_a_job_sent_to_a_frozen_idle_node_then_killed_runs_on_the_survivor(tmp_path: Path, clip: Path):
    # With kombu's BRPOP the idle node's waiting command takes the job into a socket nobody
    # reads again, and it is lost (place_before_kill "nowhere": ASR_TAKE_POLL_SECONDS=0,
    # python -m bench.take_window). A frozen node's atomic take sends nothing.
    report = frozen_then_killed(tmp_path, clip, take_poll_seconds=0.1)
    assert report["place_before_kill"] == "queued", report
    assert report["outcome"] == "SUCCESS", report
    assert word_error_rate(str(references()["jfk.flac"]["text"]), report["text"]) <= 0.1


def test_a_node_killed_at_seeded_moments_while_it_takes_jobs_loses_none(tmp_path: Path, clip: Path):
    report = kills_while_taking(tmp_path, clip, seed=11, kills=4, jobs_per_kill=150)
    assert report["lost"] == [] and report["unheld"] == [], report
    assert report["not_ended"] == 0, report
    assert report["ended"] == {"AudioNotFoundError": 4 * 144, "SUCCESS": 4 * 6}, report
    assert all(sum(v for k, v in r.items() if k != "kill") == 150 * (r["kill"] + 1) for r in report["rounds"])
    # The dead nodes held jobs at some kill (else the test never met the moment it is about).
    assert report["held_by_dead_nodes"] > 0, report


def test_an_idle_worker_looks_at_its_queues_ten_times_a_second_not_in_a_spin(
    server: RedisServer, tmp_path: Path
):
    redis = StrictRedis.from_url(server.url)
    with LocalStack(redis_url=server.url, concurrency=1, log_path=tmp_path / "idle.log"):
        assert redis.keys(node_key("*"))  # a worker's main process, beating
        before = redis.info("commandstats").get("cmdstat_eval", {}).get("calls", 0)
        time.sleep(3.0)
        calls = redis.info("commandstats").get("cmdstat_eval", {}).get("calls", 0) - before
    assert 5 <= calls <= 60, calls  # ASR_TAKE_POLL_SECONDS=0.1: 30 in 3 s
