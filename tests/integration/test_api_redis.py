"""The HTTP API's Redis: behind Sentinels, and lost while the API runs.

Real processes only: a Sentinel topology (evaluation/sentinel_topology.py) or a
private ``redis-server`` that the test stops, and the API as a uvicorn process.
No worker: these tests are about what the API itself does with Redis.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from evaluation.sentinel_topology import SentinelTopology
from producer.api.local import ApiServer, server_env
from producer.local import RedisServer
from tests.helpers import audio_file

pytestmark = pytest.mark.integration

KEY = "test-key-1"
QUEUE = "api-redis-no-worker"  # nobody consumes it: submitted jobs wait there


def _http(server: ApiServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)


def test_the_api_enqueues_and_reads_jobs_through_sentinel(redis_server_binary: str, tmp_path: Path):
    """A ``sentinel://`` REDIS_URL: the API starts, enqueues, and reads the queue and the backend."""
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    with SentinelTopology() as topology:
        env = server_env(uploads, ASR_QUEUE=QUEUE, REDIS_SENTINEL_MASTER=topology.master_name)
        with ApiServer(topology.url, tmp_path / "api.log", **env) as server, _http(server) as http:
            submitted = http.post("/v1/jobs", json={"audio": str(audio_file("jfk.flac"))})
            assert submitted.status_code == 202, submitted.text
            job_id = submitted.json()["id"]
            view = http.get(f"/v1/jobs/{job_id}").json()
            assert (view["state"], view["queue_position"]) == ("PENDING", 1)
            assert [job["id"] for job in http.get("/v1/jobs").json()["data"]] == [job_id]
            ready = httpx.get(f"{server.url}/readyz").json()
            assert ready["checks"]["redis"] is True, ready
            # The job is in the master the Sentinels name, where the API put it.
            assert topology.client(topology.master()).llen(QUEUE) == 1


def test_redis_lost_after_start_answers_503(redis_server_binary: str, tmp_path: Path):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    redis = RedisServer().start()  # the API's own: stopping it leaves the shared one alone
    try:
        env = server_env(uploads, ASR_QUEUE=QUEUE)
        with ApiServer(redis.url, tmp_path / "api.log", **env) as server, _http(server) as http:
            assert http.post("/v1/jobs", json={"audio": str(audio_file("jfk.flac"))}).status_code == 202
            redis.stop()

            submitted = http.post("/v1/jobs", json={"audio": str(audio_file("jfk.flac"))})
            assert submitted.status_code == 503, submitted.text
            error = submitted.json()["error"]
            assert error["type"] == "server_error" and error["code"] == "broker_unavailable"
            ready = httpx.get(f"{server.url}/readyz")
            assert ready.status_code == 503 and ready.json()["checks"].get("redis") is not True
            assert "internal error" not in server.log()
    finally:
        redis.stop()
