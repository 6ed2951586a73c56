"""A uvicorn process serving ``producer.api:app`` on a free port (tests, benchmarks, local demos).

The API's counterpart of :class:`producer.local.LocalStack`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from producer.local import free_port

__all__ = ["ApiServer", "server_env"]

ROOT = Path(__file__).resolve().parents[2]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


class ApiServer:
    """``python -m producer.api`` against ``redis_url`` with ``env``; its output goes to ``log_path``.

    ``root`` is the directory it is served from (its cwd and only ``PYTHONPATH`` entry):
    this checkout by default, or a folder holding the API image's file set.
    """

    def __init__(self, redis_url: str, log_path: Path, *, root: Path = ROOT, **env: str) -> None:
        self.redis_url = redis_url
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("ASR_API", "CELERY_"))},
            "REDIS_URL": redis_url,
            "PYTHONPATH": (
                os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
                if root == ROOT
                else str(root)
            ),
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> ApiServer:
        # The CLI a deployment runs (python -m producer.api), which runs uvicorn.
        args = [sys.executable, "-m", "producer.api", "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                args, cwd=self.root, env=self._env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the API exited with {self.process.returncode}:\n{self.log()}")
            if _healthy(self.url):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the API did not answer within {timeout} s:\n{self.log()}")

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.stop()


def server_env(uploads: Path | str, keys: str = "test-key-1,test-key-2", **extra: str) -> Mapping[str, str]:
    """The API's environment for a test: keys, where uploads go (a directory or s3:// prefix), ``extra``."""
    return {"ASR_API_KEYS": keys, "ASR_UPLOAD_URL": str(uploads), **extra}
