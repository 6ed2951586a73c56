"""A RabbitMQ broker node lost: a private three-node cluster on loopback (started and stopped
here, never the machine's server), a real worker, the real model and real speech.

The node that leads the ``asr`` quorum queue is SIGKILLed while a job runs and others wait;
more are submitted while the queue elects a new leader. Every job the broker confirmed ends
SUCCESS (``python -m bench.faults rabbitmq-leader`` runs it larger and prints the figures).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluation import rabbitmq
from evaluation.faults import speech_file
from evaluation.rabbitmq_faults import leader_loss

pytestmark = pytest.mark.integration


def test_the_queue_leaders_node_killed_every_confirmed_job_succeeds(tmp_path: Path, redis_server_binary: str):
    why = rabbitmq.available()
    if why:
        pytest.skip(why)
    report = leader_loss(tmp_path, speech_file(2, tmp_path), before=3, during=3, concurrency=1)
    assert report["new_leader"] != report["killed_node"]
    assert not report["lost"] and not report["failed"], report
    assert report["succeeded"] == report["jobs"] >= 3, report
    assert report["all_success"], report
