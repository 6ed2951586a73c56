"""RabbitMQ as the broker, the pure parts: which transport, the queues' arguments, the delivery
count, which lifecycle hooks serve which transport (the behaviour: tests/integration/test_rabbitmq*.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from asr_protocol.queues import (
    JobQueue,
    JobQueues,
    delivery_count,
    is_amqp,
    job_queue,
    queue_settings,
)
from producer.config import ProducerSettings
from worker.pipeline.errors import RedeliveryLimitError
from worker.pipeline.settings import Settings
from worker.runtime import consumer_timeout, hooks, liveness, nodeloss, recovery, take
from worker.runtime.delivery import check_delivery
from worker.runtime.transport import AMQP, REDIS, broker_transport


@pytest.mark.parametrize(
    ("url", "transport"),
    [
        ("redis://localhost:6379/0", REDIS),
        ("sentinel://a:26379/0;sentinel://b:26379/0", REDIS),
        ("amqp://guest:guest@127.0.0.1:5672//", AMQP),
        ("amqp://u:p@a:5672//;amqp://u:p@b:5672//", AMQP),
    ],
)
def test_the_transport_is_read_from_the_url(url: str, transport: str) -> None:
    assert broker_transport(url) == transport
    assert is_amqp(url) == (transport == AMQP)


def test_a_url_kombu_cannot_use_is_not_amqp() -> None:
    # Celery then refuses it with a typed error when it connects (the CLI's exit 3).
    assert is_amqp("http://x") is False


def test_the_redis_only_mechanisms_declare_their_transport() -> None:
    assert liveness.TRANSPORT == nodeloss.TRANSPORT == recovery.TRANSPORT == take.TRANSPORT == REDIS
    assert not hooks.serves(take.take_atomically, AMQP)
    assert consumer_timeout.TRANSPORT == AMQP
    assert not hooks.serves(liveness.start_heartbeat, AMQP)
    assert not hooks.serves(recovery.remember_received, AMQP)
    assert hooks.serves(liveness.start_heartbeat, REDIS)
    assert not hooks.serves(consumer_timeout.check_server, REDIS)
    assert hooks.serves(consumer_timeout.check_server, AMQP)


def test_a_job_queue_is_plain_on_redis_and_quorum_with_a_cap_on_rabbitmq() -> None:
    assert type(job_queue("asr", amqp=False, max_deliveries=3, consumer_timeout=60)).__name__ == "Queue"
    queue = job_queue("asr", amqp=True, max_deliveries=3, consumer_timeout=60.5)
    assert isinstance(queue, JobQueue) and queue.durable
    assert queue.queue_arguments == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 3,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "asr.dead-letter",
        "x-consumer-timeout": 60500,
    }


def test_a_missing_queue_is_declared_like_the_job_queues() -> None:
    queues = JobQueues([job_queue("asr", amqp=True, max_deliveries=2, consumer_timeout=None)])
    other = queues["asr-large"]
    assert isinstance(other, JobQueue)
    assert other.queue_arguments["x-delivery-limit"] == 2
    assert other.queue_arguments["x-dead-letter-routing-key"] == "asr-large.dead-letter"
    assert not isinstance(JobQueues([])["plain"], JobQueue), "no job queue to copy: Celery's own"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, {"max_deliveries": 3, "consumer_timeout": 6 * 3600 + 600 + 600}),
        (
            {"ASR_MAX_DELIVERIES": "5", "ASR_HARD_TIME_LIMIT": "0"},
            {"max_deliveries": 5, "consumer_timeout": None},
        ),
    ],
)
def test_a_producer_declares_a_queue_as_the_workers_would(env: dict[str, str], expected: object) -> None:
    for side in (ProducerSettings.from_env(env), Settings.from_env(env)):
        declared = queue_settings(max_deliveries=side.max_deliveries, hard_time_limit=side.hard_time_limit)
        assert declared == expected, type(side).__name__


@pytest.mark.parametrize("name", ["ASR_MAX_DELIVERIES", "ASR_HARD_TIME_LIMIT"])
def test_a_producer_names_a_queue_variable_it_cannot_read(name: str) -> None:
    with pytest.raises(ValueError, match=f"{name}='x' is not a number"):
        ProducerSettings.from_env({name: "x"})


def test_the_delivery_count_comes_from_the_broker_header() -> None:
    assert delivery_count(SimpleNamespace(**{"x-delivery-count": 2})) == 2
    assert delivery_count(SimpleNamespace(request_dict={"x-delivery-count": 0})) == 0
    assert delivery_count(SimpleNamespace()) is None  # Redis: no such header
    assert check_delivery(None, "id", 0, 3, broker_count=2) == 3
    with pytest.raises(RedeliveryLimitError, match="started 4 times"):
        check_delivery(None, "id", 0, 3, broker_count=3)


@pytest.mark.parametrize(
    ("version", "honours"), [("3.10.8", False), ("3.11.28", False), ("3.12.0", True), ("4.1.2", True)]
)
def test_which_servers_read_a_queue_s_consumer_timeout(version: str, honours: bool) -> None:
    assert consumer_timeout.honours_queue_timeout(version) is honours
