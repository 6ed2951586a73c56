"""Routing: workers on one Redis consume only the queues they are told to (-Q)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis

from producer import Client
from producer.local import LocalStack, RedisServer
from producer.ops import worker_info
from tests.helpers import audio_file

pytestmark = pytest.mark.integration


def node_name(stack: LocalStack) -> str:
    return stack.hostname.replace("%h", socket.gethostname())


def start_worker(server: RedisServer, logs: Path, name: str, queues: list[str]) -> LocalStack:
    env = {"ASR_CACHE_DIR": str(logs / "cache")}
    return LocalStack(
        concurrency=1, redis_url=server.url, env=env, queues=queues, log_path=logs / f"{name}.log"
    )


@pytest.fixture(scope="module")
def server(redis_server_binary: str) -> Iterator[RedisServer]:
    running = RedisServer().start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def workers(server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LocalStack]]:
    logs = tmp_path_factory.mktemp("queues")
    with ExitStack() as stack:
        started = {
            queue: stack.enter_context(start_worker(server, logs, queue, [queue]))
            for queue in ("asr.a", "asr.b")
        }
        yield started


@pytest.fixture()
def client(server: RedisServer) -> Iterator[Client]:
    with Client(server.url, server.url) as c:
        yield c


def test_each_job_is_done_by_the_worker_consuming_its_queue(client: Client, workers: dict[str, LocalStack]):
    jfk = audio_file("jfk.flac")
    queues = ["asr.a", "asr.b", "asr.b", "asr.a", "asr.a", "asr.b"]
    jobs = [(queue, client.submit(jfk, queue=queue)) for queue in queues]
    for queue, job in jobs:
        result = job.result(timeout=120)
        assert "country" in result["text"]
        assert result["worker"]["hostname"] == node_name(workers[queue]), queue
        assert result["worker"]["pid"] in workers[queue].child_pids()


def test_info_shows_what_each_worker_consumes(client: Client, workers: dict[str, LocalStack]):
    replies = worker_info(client, timeout=2)
    assert {node: reply["queues"] for node, reply in replies.items()} == {
        node_name(workers["asr.a"]): ["asr.a"],
        node_name(workers["asr.b"]): ["asr.b"],
    }


def test_a_job_waits_in_its_queue_until_a_worker_consumes_it(
    client: Client, server: RedisServer, workers: dict[str, LocalStack], tmp_path: Path
):
    job = client.submit(audio_file("jfk.flac"), queue="asr.c")
    # Both workers take jobs sent after it on their own queues, and leave it in Redis's list.
    for queue in ("asr.a", "asr.b"):
        assert "country" in client.transcribe(audio_file("jfk.flac"), queue=queue, timeout=120)["text"]
    assert job.state == "PENDING"
    assert redis.Redis.from_url(server.url).llen("asr.c") == 1
    with start_worker(server, tmp_path, "asr.c", ["asr.c"]) as late:
        result = job.result(timeout=120)
    assert result["worker"]["hostname"] == node_name(late)
    assert "country" in result["text"]
