"""A process's memory as Linux reports it in ``/proc/<pid>/status``: one reader for tests and benchmarks."""

from __future__ import annotations

from pathlib import Path

__all__ = ["status_mib"]


def status_mib(pid: int | str, field: str) -> float:
    """A memory field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM`` ...) in MiB; ``pid`` may be "self"."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise KeyError(f"no {field} in /proc/{pid}/status")
