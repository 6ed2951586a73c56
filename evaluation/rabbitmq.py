"""RabbitMQ for tests and fault drivers: a fresh vhost on the machine's server, or a private cluster.

:func:`vhost` adds a virtual host to the RabbitMQ server already running on
127.0.0.1:5672 (guest/guest) and deletes it afterwards: that server is shared, so
nothing here stops, restarts or reconfigures it. :class:`RabbitCluster` starts
``rabbitmq-server`` nodes of its own on loopback (distinct node names, ports and data
directories, the machine's Erlang cookie), joins them with ``rabbitmqctl
join_cluster``, can SIGKILL one, and stops them all.

The ``rabbitmq-server`` and ``rabbitmqctl`` wrappers of Debian's package run as the
``rabbitmq`` user: the data directories are made for it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "SHARED_URL",
    "RabbitCluster",
    "RabbitNode",
    "available",
    "ctl",
    "queue_info",
    "shared_server_up",
    "vhost",
]

#: The machine's own RabbitMQ (shared: never stopped here).
SHARED_HOST = "127.0.0.1:5672"
SHARED_URL = f"amqp://guest:guest@{SHARED_HOST}"


def available() -> str | None:
    """Why RabbitMQ tests cannot run here, or None when they can."""
    if not shutil.which("rabbitmqctl") or not shutil.which("rabbitmq-server"):
        return "rabbitmq-server is not installed (Debian: apt-get install rabbitmq-server)"
    if os.geteuid() != 0:
        return "rabbitmqctl needs root here (it runs as the rabbitmq user through su)"
    return None


def shared_server_up() -> bool:
    import socket

    host, port = SHARED_HOST.split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def ctl(*args: str, node: str | None = None, timeout: float = 120) -> str:
    """``rabbitmqctl args`` (against ``node``); its output. Raises CalledProcessError on failure."""
    command = ["rabbitmqctl", *(["-n", node] if node else []), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, command, done.stdout, done.stderr)
    return done.stdout


@contextmanager
def vhost(prefix: str = "asr-test", *, node: str | None = None, port: int = 5672) -> Iterator[str]:
    """A fresh vhost with full permissions for guest; yields its ``amqp://`` URL; deleted afterwards."""
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    ctl("add_vhost", name, node=node)
    try:
        ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*", node=node)
        yield f"amqp://guest:guest@127.0.0.1:{port}/{name}"
    finally:
        ctl("delete_vhost", name, node=node)


def queue_info(name: str, url: str, *fields: str, node: str | None = None) -> dict[str, str]:
    """``rabbitmqctl list_queues`` ``fields`` of queue ``name`` in ``url``'s vhost ({} when absent)."""
    host = url.rsplit("/", 1)[1] or "/"
    out = ctl("list_queues", "-q", "--no-table-headers", "-p", host, "name", *fields, node=node)
    for line in out.splitlines():
        cells = line.split("\t")
        if cells and cells[0] == name:
            return dict(zip(fields, cells[1:], strict=False))
    return {}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RabbitNode:
    """One ``rabbitmq-server`` of a private cluster."""

    name: str
    port: int
    dist_port: int
    base: Path
    config: str
    process: subprocess.Popen[bytes] | None = None
    os_pid: int | None = None
    management_port: int | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "rabbitmq.conf").write_text(self.config)
        plugins = "[rabbitmq_management]." if self.management_port else "[]."
        (self.base / "enabled_plugins").write_text(plugins + "\n")
        shutil.chown(self.base, "rabbitmq", "rabbitmq")
        for path in self.base.iterdir():
            shutil.chown(path, "rabbitmq", "rabbitmq")
        env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            # Not the machine's rabbitmq-env.conf: it names the shared node.
            "RABBITMQ_CONF_ENV_FILE": "/dev/null",
            **self.extra,
        }
        with open(self.base / "stdout.log", "ab") as log:
            self.process = subprocess.Popen(
                ["rabbitmq-server"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def await_startup(self, timeout: float = 180) -> None:
        # await_startup fails at once while the VM has not yet registered with epmd.
        deadline = time.monotonic() + timeout
        while True:
            try:
                ctl("await_startup", "--timeout", str(int(timeout)), node=self.name, timeout=timeout + 30)
                break
            except subprocess.CalledProcessError as exc:
                if self.process is not None and self.process.poll() is not None:
                    log = (self.base / "stdout.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"{self.name} exited: {log}") from exc
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        self.os_pid = int(ctl("eval", "list_to_integer(os:getpid()).", node=self.name).strip())

    def kill(self) -> None:
        """SIGKILL the node's Erlang VM: no goodbye to the cluster or to its clients."""
        if self.os_pid is not None:
            try:
                os.kill(self.os_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.os_pid = None
        if self.process is not None:
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            ctl("stop", node=self.name, timeout=60)
            self.process.wait(60)
        except (subprocess.SubprocessError, OSError):
            self.kill()


class RabbitCluster:
    """``size`` RabbitMQ nodes on loopback, clustered; ``rabbitmq_conf`` is added to each node's
    config, ``env`` to each node's environment, ``management`` enables the first node's HTTP API."""

    def __init__(
        self,
        size: int = 3,
        *,
        rabbitmq_conf: str = "",
        management: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="asr-rabbit-"))
        shutil.chown(self.base, "rabbitmq", "rabbitmq")
        tag = uuid.uuid4().hex[:6]
        self.nodes: list[RabbitNode] = []
        for index in range(size):
            port = _free_port()
            management_port = _free_port() if management and index == 0 else None
            config = f"listeners.tcp.default = 127.0.0.1:{port}\n" + rabbitmq_conf
            if management_port:
                config += f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {management_port}\n"
            self.nodes.append(
                RabbitNode(
                    name=f"asr{tag}n{index + 1}@localhost",
                    port=port,
                    dist_port=_free_port(),
                    base=self.base / f"n{index + 1}",
                    config=config,
                    management_port=management_port,
                    extra=dict(env or {}),
                )
            )

    @property
    def url(self) -> str:
        """Every node's URL, ``;``-separated: kombu fails over between them."""
        return ";".join(node.url for node in self.nodes)

    def urls(self, nodes: Sequence[RabbitNode] | None = None) -> str:
        return ";".join(node.url for node in (nodes or self.nodes))

    def start(self) -> RabbitCluster:
        try:
            for node in self.nodes:
                node.start()
            for node in self.nodes:
                node.await_startup()
            first = self.nodes[0].name
            for node in self.nodes[1:]:
                ctl("stop_app", node=node.name)
                ctl("join_cluster", first, node=node.name)
                ctl("start_app", node=node.name)
            for node in self.nodes:
                node.await_startup()
        except Exception:
            self.stop()
            raise
        return self

    def running(self) -> list[RabbitNode]:
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    def node_named(self, name: str) -> RabbitNode:
        return next(n for n in self.nodes if n.name == name)

    def leader(self, queue: str, vhost_name: str = "/", *, timeout: float = 60) -> RabbitNode:
        """The node that leads quorum queue ``queue`` now."""
        deadline = time.monotonic() + timeout
        while True:
            for asking in self.running():
                try:
                    out = ctl("list_queues", "-q", "--no-table-headers", "-p", vhost_name, "name", "leader",
                              node=asking.name, timeout=30)
                except subprocess.SubprocessError:
                    continue
                for line in out.splitlines():
                    cells = line.split("\t")
                    if cells[0] == queue and len(cells) > 1 and cells[1].strip():
                        return self.node_named(cells[1].strip())
            if time.monotonic() > deadline:
                raise AssertionError(f"no node leads {queue}")
            time.sleep(0.5)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> RabbitCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def first_message(url: str, queue: str) -> Any:
    """One message taken (and acked) from ``queue`` at ``url``, or None: to look into a dead-letter queue."""
    from kombu import Connection

    with Connection(url) as connection:
        channel = connection.default_channel
        message = channel.basic_get(queue, no_ack=True)
        return message
