"""Benchmarks that print figures. Never part of the tests' pass/fail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["write_report"]


def write_report(report: dict[str, Any], folder: Path, name: str) -> Path:
    """Keep a benchmark's figures as ``folder/name`` (indented JSON) and say where."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
    return path
