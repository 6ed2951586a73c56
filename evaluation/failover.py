"""Redis Sentinel failover mid-run: the master SIGKILLed while jobs are queued and running.

The scenario of ``python -m bench.faults failover``; the integration test runs it
small. Workers, producer and inspection all reach Redis through ``sentinel://``
URLs naming the three Sentinels, with ``REDIS_SENTINEL_MASTER``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evaluation.faults import _report, wait_all
from evaluation.node_faults import SEQUENTIAL, _running_on, wait_until
from evaluation.sentinel_topology import SentinelTopology
from producer import Client
from producer.local import LocalStack

__all__ = ["failover"]


def failover(
    folder: Path,
    audio: Path,
    *,
    jobs: int = 6,
    concurrency: int = 2,
    after: Callable[[str, list[str]], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Kill the master once ``concurrency`` jobs run and the rest wait; every job must end SUCCESS once.

    ``after(url, job ids)``, if given, runs once the jobs have ended, with the promoted
    master and the worker still up; what it returns goes into the report.
    """
    previous = os.environ.get("REDIS_SENTINEL_MASTER")
    with SentinelTopology() as topo:
        os.environ["REDIS_SENTINEL_MASTER"] = topo.master_name  # for this process's Client
        try:
            env = {"REDIS_SENTINEL_MASTER": topo.master_name, **SEQUENTIAL}
            with LocalStack(
                redis_url=topo.url, concurrency=concurrency, env=env, log_path=folder / "failover.log"
            ) as stack:
                client = Client(topo.url, topo.url)
                submitted = client.submit_many([audio] * jobs)
                wait_until(lambda: _running_on(topo.url, stack, concurrency), 120, "jobs running")
                killed_at = time.monotonic()
                old_master = topo.kill_master()
                promoted = topo.wait_for_failover(old_master)
                outcomes = wait_all(submitted, timeout=600)
                all_done = time.monotonic() - killed_at
                client.close()
                report = _report("failover", submitted, outcomes, [stack.log_path], kills=1, audio=audio.name)
                if after is not None:
                    report.update(after(topo.url, [job.id for job in submitted]))
        finally:
            if previous is None:
                os.environ.pop("REDIS_SENTINEL_MASTER", None)
            else:
                os.environ["REDIS_SENTINEL_MASTER"] = previous
    return {
        **report,
        "seconds_to_promotion": round(promoted, 1),
        "seconds_to_all_success": round(all_done, 1),
        "deliveries": sorted(o.get("deliveries", 1) for o in outcomes.values() if isinstance(o, dict)),
    }
