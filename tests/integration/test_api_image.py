"""The API image's file set (producer/ and asr_protocol/, nothing of worker/) cancels running jobs.

The API is started from a folder holding only those two packages, as
``docker/Dockerfile.api`` copies them, against a real worker started from the
whole checkout. A running job is cancelled through ``DELETE /v1/jobs/{id}`` (one
split across the fleet, whose cancel goes through the Redis cancel protocol, and
one that is not), and one through ``asr cancel`` run from the same folder.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from evaluation.audio import concatenate
from producer.api.local import ApiServer, server_env
from producer.local import LocalStack
from tests.helpers import ROOT, audio_file, run_module, wait_until, worker_log, worker_stack

pytestmark = pytest.mark.integration

#: What docker/Dockerfile.api copies into the image.
IMAGE_PACKAGES = ("producer", "asr_protocol")
KEY = "test-key-1"


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("api-image")
    for package in IMAGE_PACKAGES:
        shutil.copytree(ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.fixture(scope="module")
def image_stack(tmp_path_factory: pytest.TempPathFactory, redis_server_binary: str) -> Iterator[LocalStack]:
    # Its own worker: its jobs are cancelled and its children killed. The sequential decoder
    # keeps the long file busy long enough to be caught running.
    with worker_stack(tmp_path_factory, "image-worker", ASR_BATCH_SIZE="1") as running:
        yield running


@pytest.fixture(scope="module")
def image_api(
    image_root: Path, image_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    folder = tmp_path_factory.mktemp("image-api")
    (folder / "uploads").mkdir()
    env = server_env(folder / "uploads", keys=KEY)
    with ApiServer(image_stack.url, folder / "api.log", root=image_root, **env) as server:
        yield server


@pytest.fixture(scope="module")
def long_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """jfk.flac 24 times with pauses: 288 s of real speech."""
    return concatenate(audio_file("jfk.flac"), 24, tmp_path_factory.mktemp("long") / "jfk_x24.wav")


def _call(api: ApiServer, method: str, path: str, **kwargs: object) -> requests.Response:
    return requests.request(
        method, f"{api.url}{path}", headers={"Authorization": f"Bearer {KEY}"}, timeout=60, **kwargs
    )


def _submit_running(api: ApiServer, audio: Path, **options: object) -> str:
    """Submit ``audio`` through the API and wait until a worker reports progress on it."""
    answer = _call(api, "POST", "/v1/jobs", json={"audio": str(audio), "options": options})
    assert answer.status_code == 202, answer.text
    job_id = str(answer.json()["id"])
    wait_until(
        lambda: _call(api, "GET", f"/v1/jobs/{job_id}").json()["state"] == "PROGRESS",
        120,
        f"job {job_id} never started",
    )
    return job_id


def test_the_image_file_set_holds_no_worker_code(image_root: Path):
    probe = subprocess.run(
        [sys.executable, "-c", "import producer.api, producer.cli, asr_protocol.cancel; import worker"],
        cwd=image_root,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(image_root)},
        capture_output=True,
        text=True,
    )
    assert "No module named 'worker'" in probe.stderr, probe.stderr


def test_a_split_job_is_cancelled_through_the_api_of_the_image(
    image_api: ApiServer, image_stack: LocalStack, long_file: Path
):
    job_id = _submit_running(image_api, long_file, fanout_seconds=60)

    cancelled = _call(image_api, "DELETE", f"/v1/jobs/{job_id}")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "REVOKED"
    wait_until(
        lambda: "nothing to merge" in worker_log(image_stack), 120, "the pieces never stopped for the cancel"
    )
    assert _call(image_api, "GET", f"/v1/jobs/{job_id}").json()["state"] == "REVOKED"
    assert "ModuleNotFoundError" not in image_api.log()


def test_a_running_job_is_cancelled_through_the_api_and_the_cli_of_the_image(
    image_api: ApiServer, image_stack: LocalStack, image_root: Path, long_file: Path
):
    through_api = _submit_running(image_api, long_file)
    cancelled = _call(image_api, "DELETE", f"/v1/jobs/{through_api}")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "REVOKED"

    through_cli = _submit_running(image_api, long_file)
    done = run_module("producer", "cancel", through_cli, redis_url=image_stack.url, root=image_root)
    assert done.returncode == 0, done.stderr
    assert "REVOKED" in done.stdout

    # The worker goes on: a job sent through the same API runs to its end.
    short = _call(image_api, "POST", "/v1/jobs", json={"audio": str(audio_file("jfk.flac"))}).json()["id"]
    wait_until(
        lambda: _call(image_api, "GET", f"/v1/jobs/{short}").json()["state"] == "SUCCESS",
        180,
        "the worker did not run a job after the cancels",
    )
