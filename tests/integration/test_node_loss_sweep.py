"""The node-loss sweep against a real Redis and kombu's real Redis transport (no worker processes).

Deliveries are taken the way a worker's consumer takes them (``basic_get`` without
ack: kombu's ``unacked`` hash and ``unacked_index`` zset), holder records are
written by the worker's own Lua call, and liveness records are plain keys.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kombu import Connection, Exchange, Producer, Queue

from producer.local import RedisServer
from worker.runtime.liveness import holder_key, node_key, record_holder
from worker.runtime.nodeloss import LOCK_KEY, sweep

pytestmark = pytest.mark.integration

DEAD, ALIVE = "celery@dead/1/aa", "celery@alive/2/bb"


@pytest.fixture()
def channel(redis_server_binary: str) -> Iterator[Any]:
    server = RedisServer().start()
    conn = Connection(server.url, transport_options={"visibility_timeout": 3600})
    try:
        yield conn.channel()
    finally:
        conn.release()
        server.stop()


def take(channel: Any, job_id: str, queue: str = "asr") -> str:
    """Publish one job on ``queue`` and take it unacked, as a worker's consumer does; return its tag."""
    q = Queue(queue, Exchange(queue, type="direct"), routing_key=queue, channel=channel)
    q.declare()
    Producer(channel).publish({"job": job_id}, exchange=queue, routing_key=queue, headers={"id": job_id})
    message = q.get(no_ack=False)
    assert message is not None
    return str(message.delivery_tag)


def queued_ids(channel: Any, queue: str = "asr") -> list[str]:
    return [json.loads(raw)["headers"]["id"] for raw in channel.client.lrange(queue, 0, -1)]


def test_a_dead_holders_delivery_goes_back_once(channel: Any):
    tag = take(channel, "job-1")
    assert record_holder(channel, tag, DEAD)
    assert queued_ids(channel) == []
    assert sweep(channel, own_node=ALIVE) == ["job-1"]
    assert queued_ids(channel) == ["job-1"]
    assert not channel.client.hexists(channel.unacked_key, tag)
    assert channel.client.zscore(channel.unacked_index_key, tag) is None
    assert channel.client.get(holder_key(tag)) is None
    raw = json.loads(channel.client.lindex("asr", 0))
    assert raw["headers"]["redelivered"] is True, "its next start counts as a delivery"
    assert sweep(channel, own_node=ALIVE) == [], "a second sweep restores nothing"
    assert queued_ids(channel) == ["job-1"]


def test_a_live_holders_delivery_is_never_taken(channel: Any):
    tag = take(channel, "job-2")
    record_holder(channel, tag, ALIVE)
    channel.client.set(node_key(ALIVE), "{}", ex=30)
    for _ in range(3):
        assert sweep(channel, own_node="celery@other/3/cc") == []
    assert channel.client.hexists(channel.unacked_key, tag)
    assert queued_ids(channel) == []


def test_only_the_dead_nodes_deliveries_move(channel: Any):
    dead_tag, live_tag = take(channel, "job-dead"), take(channel, "job-live")
    record_holder(channel, dead_tag, DEAD)
    record_holder(channel, live_tag, ALIVE)
    channel.client.set(node_key(ALIVE), "{}", ex=30)
    assert sweep(channel, own_node=None) == ["job-dead"]
    assert channel.client.hexists(channel.unacked_key, live_tag)


def test_a_delivery_without_a_holder_record_is_left_to_the_visibility_timeout(channel: Any):
    tag = take(channel, "job-3")
    assert sweep(channel, own_node=ALIVE) == []
    assert channel.client.hexists(channel.unacked_key, tag)


def test_the_sweeping_node_never_takes_its_own_jobs(channel: Any):
    tag = take(channel, "job-4")
    record_holder(channel, tag, DEAD)  # its liveness record is missing, but it is us
    assert sweep(channel, own_node=DEAD) == []
    assert channel.client.hexists(channel.unacked_key, tag)


def test_a_stale_record_of_an_earlier_delivery_is_dropped_not_acted_on(channel: Any):
    tag = take(channel, "job-5")
    record_holder(channel, tag, DEAD)
    # The same tag handed out again (restored elsewhere, taken by a new consumer that has not
    # recorded itself yet): kombu gives it a new unacked_index score.
    channel.client.zadd(channel.unacked_index_key, {tag: 9e9})
    assert sweep(channel, own_node=ALIVE) == []
    assert channel.client.hexists(channel.unacked_key, tag)
    assert channel.client.get(holder_key(tag)) is None


def test_an_acked_delivery_leaves_no_work(channel: Any):
    tag = take(channel, "job-6")
    record_holder(channel, tag, DEAD)
    channel.qos.ack(tag)
    assert sweep(channel, own_node=ALIVE) == []
    assert queued_ids(channel) == []


def test_one_sweeper_at_a_time(channel: Any):
    tag = take(channel, "job-7")
    record_holder(channel, tag, DEAD)
    other = "celery@other/3/cc"
    channel.client.set(node_key(other), "{}", ex=30)
    channel.client.set(LOCK_KEY, other, ex=30)  # a live node is sweeping
    assert sweep(channel, own_node=ALIVE) == []
    assert channel.client.hexists(channel.unacked_key, tag)
    channel.client.delete(LOCK_KEY)
    assert sweep(channel, own_node=ALIVE) == ["job-7"]
    assert not channel.client.exists(LOCK_KEY), "released after the sweep"


def test_a_lock_left_by_a_node_that_died_in_its_sweep_is_taken_over_at_once(channel: Any):
    # The whole-node test caught it: a node killed mid-sweep left its 30 s lock, and its own
    # jobs waited for the lock to expire instead of for its liveness record (3 s there).
    tag = take(channel, "job-8")
    record_holder(channel, tag, DEAD)
    channel.client.set(LOCK_KEY, DEAD, ex=30)
    assert sweep(channel, own_node=ALIVE) == ["job-8"]
    assert not channel.client.exists(LOCK_KEY)


def test_a_holder_is_not_recorded_for_a_delivery_already_acked(channel: Any):
    tag = take(channel, "job-8")
    channel.qos.ack(tag)
    assert not record_holder(channel, tag, ALIVE)
    assert channel.client.get(holder_key(tag)) is None
