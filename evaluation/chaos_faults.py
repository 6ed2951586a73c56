"""The five faults of the campaign (bench/chaos.py), each on a running :class:`Fleet`.

Each returns what the checks need: when it struck, when the fleet could work again,
and for a Sentinel failover the replication window (:class:`ReplicationWatch`).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from typing import Any

from evaluation.fleet import Fleet

__all__ = ["FAULTS", "SENTINEL_FAULTS", "ReplicationWatch", "inject"]

#: Fault kinds, in the table's order; the first needs the Sentinel fleet.
FAULTS = ("sentinel_kill", "redis_restart", "node_kill", "node_stop", "child_kill")
SENTINEL_FAULTS = ("sentinel_kill",)
#: How long the lone Redis stays down before it restarts on its data.
REDIS_DOWN = 5.0


class ReplicationWatch:
    """When the replica last held every write the master had: the start of the window a crash can lose.

    Every 50 ms it reads the master's ``master_repl_offset`` and then the replica's
    ``slave_repl_offset``; when the replica's is at least the master's, every write the
    master had answered before that read is on the replica. A job whose send ended after
    the last such moment and before the crash may be missing on the promoted replica; one
    sent before it may not.
    """

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.synced_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replication-watch", daemon=True)

    def start(self) -> ReplicationWatch:
        self._thread.start()
        return self

    def _run(self) -> None:
        topo = self.fleet.topology
        assert topo is not None
        while not self._stop.is_set():
            try:
                master = topo.master()
                replica = next(p for p in (topo.master_port, topo.replica_port) if p != master)
                read_at = time.time()
                offset = topo.client(master).info("replication")["master_repl_offset"]
                if topo.client(replica).info("replication").get("slave_repl_offset", -1) >= offset:
                    self.synced_at = read_at
            except Exception:
                pass
            self._stop.wait(0.05)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(5)
        return self.synced_at


def _sentinel_kill(fleet: Fleet, rng: random.Random, watch: ReplicationWatch | None) -> dict[str, Any]:
    topo = fleet.topology
    assert topo is not None and watch is not None
    killed_at = time.time()
    port = topo.kill_master()
    synced_at = watch.stop()
    topo.wait_for_failover(port, timeout=120)
    back_at = time.time()
    promoted = back_at - killed_at  # from the kill: stopping the watch may take a moment
    topo.restart_as_replica(port)  # so the next failover has a replica to promote
    deadline = time.monotonic() + 120
    while not topo.replica_in_sync(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    return {
        "at": killed_at,
        "back_at": back_at,
        "promotion_s": round(promoted, 1),
        "window": (synced_at, killed_at),
    }


def _redis_restart(fleet: Fleet, rng: random.Random, watch: ReplicationWatch | None) -> dict[str, Any]:
    at = time.time()
    fleet.kill_redis()
    time.sleep(REDIS_DOWN)
    assert fleet.redis is not None
    fleet.redis.start()
    return {"at": at, "back_at": time.time()}


def _node_kill(fleet: Fleet, rng: random.Random, watch: ReplicationWatch | None) -> dict[str, Any]:
    victim = rng.randrange(len(fleet.nodes))
    worker = fleet.nodes[victim].worker
    assert worker is not None
    at = time.time()
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    fleet.replace_node(victim)
    return {"at": at, "victim": victim}


def _node_stop(fleet: Fleet, rng: random.Random, watch: ReplicationWatch | None) -> dict[str, Any]:
    victim = rng.randrange(len(fleet.nodes))
    worker = fleet.nodes[victim].worker
    assert worker is not None
    frozen = fleet.node_loss_seconds * 1.5  # past ASR_NODE_LOSS_SECONDS: the fleet judges it lost
    at = time.time()
    os.killpg(worker.pid, signal.SIGSTOP)
    time.sleep(frozen)
    os.killpg(worker.pid, signal.SIGCONT)
    return {"at": at, "victim": victim, "frozen_s": frozen}


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _child_kill(fleet: Fleet, rng: random.Random, watch: ReplicationWatch | None) -> dict[str, Any]:
    victim = rng.randrange(len(fleet.nodes))
    worker = fleet.nodes[victim].worker
    assert worker is not None
    children = sorted(_children(worker.pid))
    at = time.time()
    if children:
        os.kill(rng.choice(children), signal.SIGKILL)
    return {"at": at, "victim": victim, "killed": bool(children)}


_INJECT = {
    "sentinel_kill": _sentinel_kill,
    "redis_restart": _redis_restart,
    "node_kill": _node_kill,
    "node_stop": _node_stop,
    "child_kill": _child_kill,
}


def inject(
    kind: str, fleet: Fleet, rng: random.Random, watch: ReplicationWatch | None = None
) -> dict[str, Any]:
    """Strike ``kind`` now and bring the fleet back (restart, resume); what happened, with times."""
    return _INJECT[kind](fleet, rng, watch)
