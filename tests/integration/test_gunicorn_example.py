"""The README's Gunicorn example: one model per forked worker, none in the master."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request

import pytest

from producer.local import free_port
from tests.helpers import ROOT, audio_file

pytestmark = pytest.mark.integration


def _get(url: str, method: str = "GET") -> dict:
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_gunicorn_post_fork_loads_in_each_worker_never_in_the_master(tmp_path):
    pytest.importorskip("gunicorn")
    port = free_port()
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as out:
        master = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "examples/gunicorn/gunicorn.conf.py",
                "--bind",
                f"127.0.0.1:{port}",
                "--log-level",
                "info",
                "examples.gunicorn.app:app",
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        configs = []
        while time.monotonic() < deadline and len({c["worker_pid"] for c in configs}) < 2:
            try:
                configs.append(_get(f"{base}/config"))
            except OSError:
                time.sleep(0.2)
        assert configs, log.read_text()
        for config in configs:
            assert config["loaded"] is True, "the model is loaded in post_fork, before the first request"
            assert config["worker_pid"] != master.pid
            assert config["warmup_seconds"] > 0
        answer = _get(f"{base}/transcribe?path={audio_file('jfk.flac')}", method="POST")
        assert "country" in answer["text"].lower() and answer["worker_pid"] != master.pid
    finally:
        master.terminate()
        master.wait(30)
    banner_pids = {int(p) for p in re.findall(r"worker pid\s*:\s*(\d+)", log.read_text())}
    assert len(banner_pids) == 2, log.read_text()
    assert master.pid not in banner_pids
