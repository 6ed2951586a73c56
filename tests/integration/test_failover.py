"""Redis Sentinel failover mid-run with a real topology: master, replica, three Sentinels on loopback.

Workers, the producer library, the CLI, the HTTP API and Flower all reach Redis through ``sentinel://``
URLs (``REDIS_SENTINEL_MASTER`` names the master). evaluation/failover.py runs it larger.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from evaluation.failover import failover
from evaluation.faults import speech_file
from producer.api.local import ApiServer, server_env
from producer.cli import RET_OK
from tests.helpers import run_module, start_flower, task_result

pytestmark = pytest.mark.integration


def test_sentinel_failover_mid_run_loses_nothing_and_runs_nothing_twice(
    tmp_path: Path, redis_server_binary: str
):
    speech = speech_file(2, tmp_path)  # 23 s of real speech: still running when the master dies
    short = speech_file(1, tmp_path)

    def after_failover(url: str, job_ids: list[str]) -> dict[str, Any]:
        # The promoted master serves the CLI and Flower through the same Sentinel URL
        # (failover() sets REDIS_SENTINEL_MASTER for this process, which both inherit).
        cli = run_module("producer", "--wait", "--timeout", "120", str(short), redis_url=url, timeout=180)
        flower = start_flower(url, tmp_path / "flower.db", tmp_path / "flower.log")
        try:
            states = [task_result(flower, job_id, timeout=30)["state"] for job_id in job_ids]
        finally:
            flower.stop()
        uploads = tmp_path / "uploads"
        uploads.mkdir()
        with (
            ApiServer(url, tmp_path / "api.log", **server_env(uploads, keys="k")) as api,
            httpx.Client(base_url=api.url, headers={"Authorization": "Bearer k"}, timeout=120) as http,
        ):
            api_states = [http.get(f"/v1/jobs/{job_id}").json()["state"] for job_id in job_ids]
            with short.open("rb") as audio:
                sent = http.post(
                    "/v1/audio/transcriptions", files={"file": audio}, data={"model": "whisper-1"}
                )
        return {
            "cli": (cli.returncode, cli.stdout, cli.stderr),
            "flower_states": states,
            "api_states": api_states,
            "api_transcription": (sent.status_code, sent.text),
        }

    # Two jobs running and one queued when the master dies.
    report = failover(tmp_path, speech, jobs=3, concurrency=2, after=after_failover)
    assert report["seconds_to_promotion"] > 0
    assert report["lost"] == [] and report["failed"] == {}, report
    assert report["succeeded"] == 3, report
    assert report["transcribed_twice"] == [], report
    assert report["flower_states"] == ["SUCCESS"] * 3, report
    assert report["api_states"] == ["SUCCESS"] * 3, report
    status, body = report["api_transcription"]
    assert status == 200 and "country" in body, body
    code, out, err = report["cli"]
    assert code == RET_OK, err
    assert "country" in out
