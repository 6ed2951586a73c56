"""Kombu's BRPOP against the atomic take (worker.runtime.take), side by side in one run.

    ./run bench take_window [--seed N] [--kills K] [--frozen F] [--jobs-per-kill J]

For each way of taking (``ASR_TAKE_POLL_SECONDS=0``: kombu's BRPOP; ``0.1``: the script):
``--frozen`` times an idle node frozen, sent a job and SIGKILLed (is the job lost?); ``--kills``
seeded SIGKILLs of a node taking a stream of fast-failing jobs and real speech (where is every
job after each kill, and does every one end after a survivor runs?); and what the poll costs: an
idle worker's Redis commands a second, and submit-to-result seconds of a job that fails at once.
Prints one JSON line per scenario and a table; writes bench/results/take_window.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from evaluation.faults import speech_file
from evaluation.take_faults import frozen_then_killed, idle_pickup, kills_while_taking

RESULTS = Path(__file__).resolve().parent / "results" / "take_window.json"
MODES = {"BRPOP (kombu)": 0.0, "atomic take": 0.1}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--frozen", type=int, default=3)
    parser.add_argument("--jobs-per-kill", type=int, default=200)
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="asr-take-"))
    audio = speech_file(1, folder)
    rows: dict[str, dict[str, Any]] = {}
    for name, poll in MODES.items():
        frozen = []
        for k in range(args.frozen):
            (folder / f"{poll:g}-{k}").mkdir()
            report = frozen_then_killed(folder / f"{poll:g}-{k}", audio, take_poll_seconds=poll)
            print(json.dumps(report), flush=True)
            frozen.append(report)
        kills = kills_while_taking(
            folder,
            audio,
            seed=args.seed,
            kills=args.kills,
            jobs_per_kill=args.jobs_per_kill,
            take_poll_seconds=poll,
        )
        kills.pop("speech_texts")
        print(json.dumps(kills), flush=True)
        idle = idle_pickup(folder, take_poll_seconds=poll)
        print(json.dumps(idle), flush=True)
        rows[name] = {
            "frozen_then_killed_lost": sum(r["place_before_kill"] == "nowhere" for r in frozen),
            "frozen_then_killed": len(frozen),
            "kills": args.kills,
            "jobs": kills["jobs"],
            "lost": len(kills["lost"]),
            "unheld": len(kills["unheld"]),
            "held_by_dead_nodes": kills["held_by_dead_nodes"],
            "ended": kills["ended"],
            "idle_commands_per_s": idle["idle_redis_commands_per_s"],
            "pickup_median_s": idle["median_s"],
            "pickup_max_s": idle["max_s"],
        }
    print(table(rows))
    RESULTS.write_text(
        json.dumps(
            {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "args": vars(args), "rows": rows},
            indent=1,
        )
        + "\n"
    )
    return 0


COLUMNS = (
    ("take", None),
    ("frozen, then killed: lost", lambda r: f"{r['frozen_then_killed_lost']} of {r['frozen_then_killed']}"),
    ("kills", lambda r: r["kills"]),
    ("jobs", lambda r: r["jobs"]),
    ("lost", lambda r: r["lost"]),
    ("unacked, no holder", lambda r: r["unheld"]),
    ("held by a dead node, put back", lambda r: r["held_by_dead_nodes"]),
    ("idle Redis commands/s", lambda r: r["idle_commands_per_s"]),
    ("submit to result, median / max s", lambda r: f"{r['pickup_median_s']} / {r['pickup_max_s']}"),
)


def table(rows: dict[str, dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(name for name, _ in COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    for take, row in rows.items():
        lines.append("| " + " | ".join([take] + [str(cell(row)) for _, cell in COLUMNS[1:]]) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
