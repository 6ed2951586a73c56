"""Operator views of the fleet: which workers run, what they consume, which model each child serves.

``worker_info`` broadcasts the workers' ``asr_info`` inspect command (defined
in ``worker/tasks/info.py``, reached by its name like the tasks): every worker's
main process answers at once, even while all its children are busy, with the
records its children wrote after loading their models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from producer.client import Client

__all__ = ["INFO_COMMAND", "worker_info"]

INFO_COMMAND = "asr_info"


def worker_info(
    client: Client, *, timeout: float = 5.0, destination: Sequence[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Ask every worker (or those named in ``destination``) what it serves.

    Waits ``timeout`` seconds for the replies: a broadcast cannot know how many
    workers exist. A worker that predates the ``asr_info`` command answers with
    ``error`` set, and its ``queues`` and child ``pid`` s come from Celery's
    own ``active_queues`` and ``stats`` instead (``model`` is then ``None``).

    Returns:
        ``{hostname: {"hostname", "pid", "queues", "versions", "children"}}``
        where each child is ``{"hostname", "pid", "queues", "model", "versions"}``
        and ``model`` is the child's ``get_model_config()`` (``None`` while it loads).

    Raises:
        BrokerUnavailableError: the broker or the result backend cannot be reached.
    """
    client.check_connection()
    control = client.app.control
    targets = list(destination) if destination else None
    replies = control.broadcast(INFO_COMMAND, reply=True, timeout=timeout, destination=targets)
    found: dict[str, dict[str, Any]] = {}
    for reply in replies or []:
        found.update(reply)
    outdated = sorted(name for name, answer in found.items() if "children" not in answer)
    if outdated:
        found.update(_from_builtin_commands(client, outdated, found, timeout))
    return dict(sorted(found.items()))


def _from_builtin_commands(
    client: Client, hostnames: list[str], answers: dict[str, dict[str, Any]], timeout: float
) -> dict[str, dict[str, Any]]:
    inspect = client.app.control.inspect(destination=hostnames, timeout=timeout)
    stats = inspect.stats() or {}
    queues = inspect.active_queues() or {}
    filled = {}
    for name in hostnames:
        pids = stats.get(name, {}).get("pool", {}).get("processes", [])
        filled[name] = {
            "hostname": name,
            "error": str(answers[name].get("error", "no asr_info reply")),
            "queues": sorted(q["name"] for q in queues.get(name, [])),
            "children": [{"hostname": name, "pid": pid, "model": None} for pid in pids],
        }
    return filled
