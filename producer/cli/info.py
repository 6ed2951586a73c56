"""asr info: which workers serve which queues, with which model.

``info`` asks every worker which queues it consumes and which model each of
its children has loaded (device, compute type, load and warm-up times), and
prints a table, or JSON with ``--json``. The broker comes from ``REDIS_URL``
(or ``CELERY_BROKER_URL`` and ``CELERY_RESULT_BACKEND``), as for submitting.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from producer.cli.codes import RET_CONNECT, RET_FAILED, RET_OK
from producer.client import BrokerUnavailableError, Client
from producer.ops import worker_info

__all__ = ["add_parsers"]

COLUMNS = ("worker", "pid", "queues", "model", "device", "compute", "loaded", "load s", "warm-up s")


def add_parsers(commands: Any, epilog: str) -> None:
    """``info``."""
    info = commands.add_parser(
        "info", help="each worker's queues and each child's loaded model", epilog=epilog
    )
    info.add_argument("--json", action="store_true", help="print the replies as JSON")
    info.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for the replies (default 5)"
    )
    info.add_argument(
        "--destination",
        action="append",
        metavar="NODE",
        help="ask only this worker (celery@host); repeatable",
    )
    info.set_defaults(run=run)


def _rows(replies: dict[str, dict[str, Any]]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for hostname, reply in replies.items():
        queues = ",".join(reply.get("queues", []))
        for child in reply.get("children", []):
            model = child.get("model") or {}
            loaded = model.get("loaded")
            rows.append(
                (
                    hostname,
                    str(child.get("pid", "")),
                    queues,
                    str(model.get("model_id", "-")),
                    _device(model),
                    str(model.get("compute_type", "-")),
                    "-" if loaded is None else ("yes" if loaded else "no"),
                    _seconds(model.get("load_seconds")),
                    _seconds(model.get("warmup_seconds")),
                )
            )
        if not reply.get("children"):
            rows.append((hostname, "-", queues, reply.get("error", "no children"), *("-",) * 5))
    return rows


def _device(model: dict[str, Any]) -> str:
    device = model.get("device")
    if device is None:
        return "-"
    return f"cuda:{model['device_index']}" if device == "cuda" and "device_index" in model else str(device)


def _seconds(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    header = "  ".join(name.upper().ljust(width) for name, width in zip(COLUMNS, widths, strict=True))
    return "\n".join(line.rstrip() for line in [header, *lines])


def run(args: argparse.Namespace) -> int:
    """``asr info``; returns the exit code."""
    client = Client()
    try:
        replies = worker_info(client, timeout=args.timeout, destination=args.destination)
    except BrokerUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return RET_CONNECT
    finally:
        client.close()
    if args.json:
        print(json.dumps(replies, indent=2, sort_keys=True))
    elif replies:
        print(_table(_rows(replies)))
    if not replies:
        print(f"no worker answered within {args.timeout:g} s", file=sys.stderr)
        return RET_FAILED
    return RET_OK
