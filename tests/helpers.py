"""The one place for what tests share: real audio and its references, worker stacks, running
the CLI, bounded waits, and the webhook verifier the docs show."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from evaluation.scoring import normalise, word_error_rate
from producer.local import PROJECT_ROOT, LocalStack, free_port

__all__ = [
    "AUTH",
    "COMPOSE",
    "ROOT",
    "SECRETS",
    "SHARED_AUDIO",
    "Flower",
    "audio_file",
    "command_args",
    "dockerfile_instructions",
    "interpolate",
    "load_verifier",
    "never",
    "normalise",
    "rabbit_stack",
    "references",
    "run_module",
    "start_flower",
    "start_worker",
    "task_result",
    "wait_for_log",
    "wait_until",
    "word_error_rate",
    "worker_log",
    "worker_stack",
]

ROOT = Path(__file__).resolve().parent.parent
SHARED_AUDIO = ROOT.parent / "shared" / "audio"
SAMPLES = ROOT / "samples"
COMPOSE = ROOT / "docker-compose.yml"
#: What the deployment-file tests put in the environment compose interpolates.
SECRETS = {
    "REDIS_PASSWORD": "test-password",
    "FLOWER_BASIC_AUTH": "test:test-password",
    "ASR_API_KEYS": "test-api-key",
    "RABBITMQ_PASSWORD": "test-rabbit-password",
}
_VAR = re.compile(r"\$\{(?P<name>\w+)(?::(?P<op>[-?])(?P<arg>[^}]*))?\}")

T = TypeVar("T")


def ctrl_c_as_on_a_terminal() -> None:
    """``preexec_fn`` for a process a test will interrupt: SIGINT's default action, as a terminal's
    foreground job has it. A test run started in the background (``cmd &`` in a script) passes
    SIGINT ignored to every child, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def job_failure(job: Any) -> Any:
    """The ``TranscriptionFailed`` a job ends with (the test fails if it ends any other way)."""
    from producer import TranscriptionFailed

    with pytest.raises(TranscriptionFailed) as failed:
        job.result(timeout=120)
    return failed.value


def wait_until(check: Callable[[], T], timeout: float, what: str, *, interval: float = 0.05) -> T:
    """Call ``check`` until it returns something true and return that; fail after ``timeout`` s.

    Raises:
        AssertionError: naming ``what`` did not happen in time.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} (waited {timeout:g} s)")
        time.sleep(interval)


def never(check: Callable[[], object], seconds: float, what: str, *, interval: float = 0.05) -> None:
    """Poll ``check`` for ``seconds``; fail as soon as it returns something true.

    For the claims that something does not happen: a bounded poll that fails fast,
    never a bare sleep followed by one look.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert not check(), what
        time.sleep(interval)


@contextmanager
def worker_stack(tmp_path_factory: pytest.TempPathFactory, name: str, **env: str) -> Iterator[LocalStack]:
    """A private Redis and a 2-child worker with ``env``; its log and model cache under a temp ``name``."""
    logs = tmp_path_factory.mktemp(name)
    env = {"ASR_CACHE_DIR": str(logs / "cache"), **env}
    with LocalStack(concurrency=2, env=env, log_path=logs / "worker.log") as running:
        yield running


@contextmanager
def rabbit_stack(logs: Path, *, concurrency: int = 2, **env: str) -> Iterator[LocalStack]:
    """A 2-child worker on a fresh vhost of the machine's RabbitMQ (deleted afterwards), results in
    a private Redis; skips when RabbitMQ cannot be used here."""
    from evaluation import rabbitmq

    why = rabbitmq.available() or (None if rabbitmq.shared_server_up() else "no RabbitMQ on 127.0.0.1:5672")
    if why:
        pytest.skip(why)
    logs.mkdir(parents=True, exist_ok=True)
    env = {"ASR_CACHE_DIR": str(logs / "cache"), **env}
    with (
        rabbitmq.vhost() as url,
        LocalStack(concurrency=concurrency, env=env, log_path=logs / "worker.log", broker_url=url) as running,
    ):
        yield running


def run_module(
    module: str,
    *args: str,
    redis_url: str | None,
    timeout: float = 300,
    root: Path = ROOT,
    broker_url: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m module args`` as a user would, against ``redis_url`` (None: no Redis configured)
    and ``broker_url`` when the broker is another (RabbitMQ).

    ``root``: the directory it runs from, and the only one on its ``PYTHONPATH`` when not this checkout.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    if root != ROOT:
        env["PYTHONPATH"] = str(root)
    if broker_url:
        env["CELERY_BROKER_URL"] = broker_url
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def worker_log(stack: LocalStack) -> str:
    return Path(stack.log_path).read_text(errors="replace")


def wait_for_log(stack: LocalStack, line: str, timeout: float = 60, what: str | None = None) -> str:
    """The worker's log once it holds ``line``."""

    def holding() -> str:
        log = worker_log(stack)
        return log if line in log else ""

    return wait_until(
        holding,
        timeout,
        what or f"the worker never logged {line!r}",
        interval=0.1,
    )


def audio_file(name: str) -> Path:
    """A real recording: the shared copy when it is beside the checkout, else the shipped sample."""
    for folder in (SHARED_AUDIO, SAMPLES, ROOT / "tests" / "data"):
        if (folder / name).is_file():
            return folder / name
    pytest.skip(f"{name} is not available")


def references() -> dict[str, dict[str, object]]:
    """The shared audio's reference transcripts (or the shipped copy)."""
    path = SHARED_AUDIO / "references.json"
    if not path.is_file():
        path = ROOT / "tests" / "data" / "references.json"
    return json.loads(path.read_text())


def load_verifier() -> Callable[..., bool]:
    """``verify_webhook`` exactly as docs/results.md shows it."""
    text = (ROOT / "docs" / "results.md").read_text()
    section = text.split("### Verifying a webhook", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, object] = {}
    exec(compile(code, "docs/results.md", "exec"), namespace)
    return namespace["verify_webhook"]  # type: ignore[return-value]


# --- deployment files (docker-compose.yml, Dockerfiles) ---


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME:?error}``, then ``$$`` -> ``$``."""

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match.group("name", "op", "arg")
        if env.get(name):
            return env[name]
        if op == "?":
            raise KeyError(f"{name}: {arg}")
        return arg if op == "-" else ""

    return _VAR.sub(substitute, value).replace("$$", "$")


def command_args(command: str | list[str]) -> list[str]:
    args = shlex.split(command) if isinstance(command, str) else list(command)
    return [interpolate(arg, SECRETS) for arg in args]


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", "", "\n".join(lines))
    instructions = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


# --- worker and Flower processes ---


def start_worker(redis_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``celery -A worker worker`` in the foreground with ``env``, for a start that must fail at once."""
    full_env = {**os.environ, "REDIS_URL": redis_url, **env}
    args = ["-c", "2", "-l", "info", "--without-mingle", "--without-gossip"]
    return subprocess.run(
        [sys.executable, "-m", "celery", "-A", "worker", "worker", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


AUTH = ("ops", "s3cret-pass")


@dataclass
class Flower:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def get(self, path: str, *, auth: tuple[str, str] | None = AUTH, **kwargs: Any) -> requests.Response:
        return requests.get(f"{self.url}{path}", auth=auth, timeout=10, **kwargs)

    def post(self, path: str, *, auth: tuple[str, str] | None = AUTH, **kwargs: Any) -> requests.Response:
        return requests.post(f"{self.url}{path}", auth=auth, timeout=10, **kwargs)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # Flower saves its state on SIGTERM
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_flower(
    redis_url: str,
    db: Path,
    log: Path,
    *,
    auth_from_env: bool = False,
    broker_url: str | None = None,
    broker_api: str | None = None,
) -> Flower:
    """Flower on ``redis_url`` (or ``broker_url`` with Redis results; ``broker_api``: RabbitMQ's
    management API, for queue lengths)."""
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "FLOWER_BASIC_AUTH"):
        env.pop(name, None)
    args = [
        sys.executable, "-m", "celery", "-A", "worker", "flower",
        f"--port={port}", "--address=127.0.0.1", "--persistent=True", f"--db={db}",
    ]  # fmt: skip
    if broker_url:
        env["CELERY_BROKER_URL"] = broker_url
    if broker_api:
        args.append(f"--broker_api={broker_api}")
    if auth_from_env:
        env["FLOWER_BASIC_AUTH"] = ":".join(AUTH)
    else:
        args.append(f"--basic-auth={':'.join(AUTH)}")
    with open(log, "ab") as out:
        process = subprocess.Popen(args, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    flower = Flower(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"flower exited with {process.returncode}:\n{log.read_text()}")
        try:
            if flower.get("/healthcheck", auth=None).status_code == 200:
                return flower
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            flower.stop()
            raise TimeoutError(f"flower did not answer within 60 s:\n{log.read_text()}")
        time.sleep(0.2)


def task_result(flower: Flower, task_id: str, timeout: float = 120) -> dict[str, Any]:
    """Poll ``GET /api/task/result/<id>`` (the result backend) until the task has ended."""

    def ended() -> dict[str, Any] | None:
        reply = flower.get(f"/api/task/result/{task_id}")
        assert reply.status_code == 200, reply.text
        body: dict[str, Any] = reply.json()
        return body if body["state"] in ("SUCCESS", "FAILURE") else None

    return wait_until(ended, timeout, f"task {task_id} did not end")
