"""A throw-away Redis Sentinel topology on loopback: one master, one replica, three Sentinels.

Every process is a real ``redis-server`` (Sentinels run as ``redis-server <conf>
--sentinel``, which is what Debian's ``redis-sentinel`` is) on free ports, with
its files in a temp directory. Sentinels notice a dead master after
``down_after_ms`` and promote the replica.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis

from producer.local import find_redis_server, free_port

__all__ = ["SentinelTopology"]


def _wait(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except redis.RedisError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} not within {timeout:g} s")


class SentinelTopology:
    """Master, replica and three Sentinels watching ``master_name``; a context manager."""

    def __init__(
        self, master_name: str = "asr-master", *, down_after_ms: int = 1000, failover_timeout_ms: int = 5000
    ) -> None:
        self.master_name = master_name
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.dir = Path(tempfile.mkdtemp(prefix="asr-sentinel-"))
        self.master_port, self.replica_port = free_port(), free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """The broker and backend URL: every Sentinel, ``;``-separated, as Celery documents."""
        return ";".join(f"sentinel://127.0.0.1:{port}/0" for port in self.sentinel_ports)

    def _server(self, port: int, *extra: str) -> None:
        folder = self.dir / str(port)
        folder.mkdir(exist_ok=True)
        args = [find_redis_server(), "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
        args += ["--appendonly", "no", "--dir", str(folder), "--logfile", str(folder / "redis.log"), *extra]
        self.processes[port] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(lambda: self.client(port).ping(), 10, f"redis-server on {port}")

    def _sentinel(self, port: int) -> None:
        folder = self.dir / f"sentinel-{port}"
        folder.mkdir()
        conf = folder / "sentinel.conf"  # a Sentinel rewrites its own file: one each
        conf.write_text(
            f"bind 127.0.0.1\nport {port}\ndir {folder}\nlogfile {folder / 'sentinel.log'}\n"
            f"sentinel monitor {self.master_name} 127.0.0.1 {self.master_port} 2\n"
            f"sentinel down-after-milliseconds {self.master_name} {self.down_after_ms}\n"
            f"sentinel failover-timeout {self.master_name} {self.failover_timeout_ms}\n"
            f"sentinel parallel-syncs {self.master_name} 1\n"
        )
        args = [find_redis_server(), str(conf), "--sentinel"]
        self.processes[port] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)

    def start(self) -> SentinelTopology:
        self._server(self.master_port)
        self._server(self.replica_port, "--replicaof", "127.0.0.1", str(self.master_port))
        _wait(
            lambda: self.client(self.replica_port).info("replication")["master_link_status"] == "up",
            20,
            "the replica in sync",
        )
        for port in self.sentinel_ports:
            self._sentinel(port)
        for port in self.sentinel_ports:  # each knows the replica and the two other Sentinels
            _wait(lambda p=port: self._sentinel_ready(p), 30, f"sentinel on {port}")
        return self

    def _sentinel_ready(self, port: int) -> bool:
        state = self.client(port).execute_command("SENTINEL", "MASTER", self.master_name)
        info = dict(zip(state[::2], state[1::2], strict=True)) if isinstance(state, list) else state
        fields = {(k.decode() if isinstance(k, bytes) else k): v for k, v in info.items()}
        return int(fields["num-slaves"]) >= 1 and int(fields["num-other-sentinels"]) >= 2

    def master(self) -> int:
        """The port the Sentinels name as master now."""
        _host, port = self.client(self.sentinel_ports[0]).execute_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name
        )
        return int(port)

    def kill_master(self) -> int:
        """SIGKILL the current master (a crash: no shutdown save, no hand-over); return its port."""
        port = self.master()
        self.processes[port].kill()
        self.processes[port].wait()
        return port

    def restart_as_replica(self, port: int) -> None:
        """Start the killed server on ``port`` again as a replica of the master now named, so
        that the next failover has a replica to promote."""
        master = self.master()
        self._server(port, "--replicaof", "127.0.0.1", str(master))

    def replica_in_sync(self, port: int) -> bool:
        try:
            return self.client(port).info("replication").get("master_link_status") == "up"
        except redis.RedisError:
            return False

    def wait_for_failover(self, old_port: int, timeout: float = 60.0) -> float:
        """Seconds until every Sentinel names a new master that answers as one."""
        started = time.monotonic()

        def promoted() -> bool:
            for sentinel in self.sentinel_ports:
                _, port = self.client(sentinel).execute_command(
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name
                )
                if int(port) == old_port:
                    return False
            return self.client(self.master()).info("replication")["role"] == "master"

        _wait(promoted, timeout, "failover")
        return time.monotonic() - started

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> SentinelTopology:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
