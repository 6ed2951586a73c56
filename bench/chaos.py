"""A seeded fault campaign against a real fleet: ``./run bench chaos --seed N --rounds K``.

Two worker nodes, the Python producer, a bare Celery client and the HTTP API stream jobs
(clips, 36 s files, 3-minute files, a file over the fan-out length) the whole time; at a
seeded moment of each round one fault strikes (evaluation/chaos_faults.py): the Sentinel
master SIGKILLed (then back as a replica), the lone AOF Redis SIGKILLed and restarted on
its data, a whole worker node SIGKILLed (then replaced), a node frozen (SIGSTOP) past
``ASR_NODE_LOSS_SECONDS`` then resumed, or one child SIGKILLed. After each round the
producers pause and every job sent so far must end SUCCESS with a right transcript; no
worker main process may exit; the fleet must take jobs again within 30 s of a promotion
or restart. Jobs that ran twice are counted. A job may count as lost only when it is
proven inside the replication window of a failover (:func:`lost_in_window`).

The seed fixes the plan (fault kinds, moments, victims, job sizes); the processes' own
timing is not repeatable. Rounds that need Sentinel run on a fleet of their own, first.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from evaluation.chaos_faults import FAULTS, SENTINEL_FAULTS, ReplicationWatch, inject
from evaluation.fleet import Fleet, Sizes
from evaluation.node_faults import logged_at
from evaluation.outages import Sent, bare_celery, check_jobs, wait_ready, worker_exits

#: The fleet must take jobs again this soon after a promotion or a restart.
BACK_WITHIN = 30.0
_SUCCEEDED = re.compile(r"Task (asr\.[a-z_]+)\[([0-9a-f-]{36})\] succeeded")
_RECEIVED = r"Task asr\.[a-z_]+\[([0-9a-f-]{36})\] received"


def plan(seed: int, rounds: int, kinds: Sequence[str] = FAULTS) -> list[dict[str, Any]]:
    """The seeded rounds: each kind as evenly often as ``rounds`` allows, in a shuffled order."""
    rng = random.Random(seed)
    order = [kinds[i % len(kinds)] for i in range(rounds)]
    rng.shuffle(order)
    return [
        {"round": i + 1, "kind": kind, "fault_at": round(rng.uniform(3.0, 15.0), 1)}
        for i, kind in enumerate(order)
    ]


def ran_twice(logs: Sequence[Path]) -> set[str]:
    counts: Counter[str] = Counter()
    for log in logs:
        if log.exists():
            counts.update(m.group(2) for m in _SUCCEEDED.finditer(log.read_text(errors="replace")))
    return {task_id for task_id, n in counts.items() if n > 1}


def lost_in_window(fleet: Fleet, job: Sent, window: tuple[float, float] | None) -> bool:
    """True if ``job`` is provably a write the failover lost: its send ended after the last moment
    the replica held all the master's writes and before the kill, and the promoted master has
    no trace of it (no queued or unacknowledged message, no stored state)."""
    if window is None or fleet.topology is None or not window[0] < job.at <= window[1]:
        return False
    redis = fleet.topology.client(fleet.topology.master())
    if redis.exists(f"celery-task-meta-{job.id}"):
        return False
    for key in redis.scan_iter(count=1000):
        kind = redis.type(key)
        if kind == b"list" and any(job.id.encode() in raw for raw in redis.lrange(key, 0, -1)):
            return False
        if kind == b"hash" and key == b"unacked" and any(job.id.encode() in v for v in redis.hvals(key)):
            return False
    return True


def back_after(fleet: Fleet, since: float) -> float | None:
    """Seconds from ``since`` to the first job a node took after it (its 'received' line)."""
    times = [t for log in fleet.logs() for t in logged_at(log, _RECEIVED).values() if t > since]
    return round(min(times) - since, 1) if times else None


def run_round(
    fleet: Fleet, spec: dict[str, Any], rng: random.Random, drain: float, post: float
) -> dict[str, Any]:
    twice_before = ran_twice(fleet.logs())
    watch = ReplicationWatch(fleet).start() if spec["kind"] in SENTINEL_FAULTS else None
    fleet.resume()
    time.sleep(spec["fault_at"])
    fault = inject(spec["kind"], fleet, rng, watch)
    time.sleep(post)  # the producers go on through the recovery
    fleet.pause()
    jobs = [job for job in list(fleet.sent) if not job.checked]
    app = bare_celery(fleet.url, fleet.master_name)
    try:
        outcomes = wait_ready(app, jobs, drain)
    finally:
        app.close()
    for job in jobs:
        job.checked = True
    checked = check_jobs(jobs, outcomes)
    window = fault.get("window")
    proved = [
        i for i in checked["not_success"] if lost_in_window(fleet, next(j for j in jobs if j.id == i), window)
    ]
    unexplained = {i: s for i, s in checked["not_success"].items() if i not in proved}
    back = back_after(fleet, fault["back_at"]) if "back_at" in fault else None
    redelivered = sum(
        1
        for s, r in outcomes.values()
        if s == "SUCCESS" and isinstance(r, dict) and r.get("deliveries", 1) > 1
    )
    return {
        **spec,
        "jobs": len(jobs),
        "by": dict(Counter(j.by for j in jobs)),
        "success": sum(1 for s, _ in outcomes.values() if s == "SUCCESS"),
        "wrong": checked["wrong_transcripts"],
        "lost_in_window": proved,
        "not_success": unexplained,
        "worker_exits": worker_exits(fleet.nodes),
        "ran_twice": sorted(ran_twice(fleet.logs()) - twice_before),
        "redelivered": redelivered,
        "back_s": back,
        "late": back is None or back > BACK_WITHIN if "back_at" in fault else False,
        **{k: v for k, v in fault.items() if k in ("promotion_s", "victim", "killed", "frozen_s")},
    }


def campaign(args: argparse.Namespace, folder: Path) -> list[dict[str, Any]]:
    rounds = plan(args.seed, args.rounds, args.faults)
    sizes = Sizes(args.clip, args.medium, args.long, args.fanout, args.fanout_seconds)
    results: list[dict[str, Any]] = []
    for sentinel in (True, False):  # the failovers first: the rounds the fleet is most likely to fail
        mine = [r for r in rounds if (r["kind"] in SENTINEL_FAULTS) == sentinel]
        if not mine:
            continue
        sub = folder / ("sentinel" if sentinel else "plain")
        sub.mkdir()
        with Fleet(
            sub, sentinel=sentinel, sizes=sizes, seed=args.seed, node_loss_seconds=args.node_loss_seconds
        ) as fleet:
            fleet.pause()
            fleet.stream()
            for spec in mine:
                rng = random.Random(args.seed * 7919 + spec["round"])
                result = run_round(fleet, spec, rng, args.drain, args.post)
                results.append(result)
                print(json.dumps(result), flush=True)
            results[-1]["refused_submissions"] = fleet.refused
    return results


TABLE_FIELDS = (
    "rounds",
    "jobs",
    "success",
    "wrong",
    "lost_in_window",
    "lost",
    "wedged_or_failed",
    "worker_exits",
    "ran_twice",
    "redelivered",
    "late",
    "back_s_max",
)


def table(results: Sequence[dict[str, Any]]) -> str:
    rows = []
    for kind in FAULTS:
        mine = [r for r in results if r["kind"] == kind]
        if not mine:
            continue
        backs = [r["back_s"] for r in mine if r.get("back_s") is not None]
        not_success = [s for r in mine for s in r["not_success"].values()]
        row = {
            "rounds": len(mine),
            "jobs": sum(r["jobs"] for r in mine),
            "success": sum(r["success"] for r in mine),
            "wrong": sum(len(r["wrong"]) for r in mine),
            "lost_in_window": sum(len(r["lost_in_window"]) for r in mine),
            "lost": sum(1 for s in not_success if s == "PENDING"),
            "wedged_or_failed": sum(1 for s in not_success if s != "PENDING"),
            "worker_exits": sum(len(r["worker_exits"]) for r in mine),
            "ran_twice": sum(len(r["ran_twice"]) for r in mine),
            "redelivered": sum(r["redelivered"] for r in mine),
            "late": sum(1 for r in mine if r["late"]),
            "back_s_max": max(backs) if backs else "-",
        }
        rows.append(f"| {kind} | " + " | ".join(str(row[f]) for f in TABLE_FIELDS) + " |")
    head = "| fault | " + " | ".join(TABLE_FIELDS) + " |"
    return "\n".join([head, "|" + " --- |" * (len(TABLE_FIELDS) + 1), *rows])


def failures(results: Sequence[dict[str, Any]]) -> int:
    return sum(
        len(r["wrong"]) + len(r["not_success"]) + len(r["worker_exits"]) + int(r["late"]) for r in results
    )


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument(
        "--faults", type=lambda s: tuple(s.split(",")), default=FAULTS, help="comma-separated kinds"
    )
    parser.add_argument(
        "--node-loss-seconds", type=float, default=10.0, help="the nodes' ASR_NODE_LOSS_SECONDS"
    )
    parser.add_argument("--drain", type=float, default=900.0, help="seconds a round waits for its jobs")
    parser.add_argument("--post", type=float, default=10.0, help="seconds of streaming after the fault")
    sizes = parser.add_argument_group("job sizes, in copies of jfk.flac (12 s each)")
    sizes.add_argument("--clip", type=int, default=1)
    sizes.add_argument("--medium", type=int, default=3)
    sizes.add_argument("--long", type=int, default=15)
    sizes.add_argument("--fanout", type=int, default=28)
    sizes.add_argument("--fanout-seconds", type=float, default=300.0, help="the nodes' ASR_FANOUT_SECONDS")
    parser.add_argument("--folder", type=Path, default=None, help="where logs go (default: a temp dir)")
    args = parser.parse_args(argv)
    unknown = set(args.faults) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults {sorted(unknown)}; known: {', '.join(FAULTS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="asr-chaos-"))
    folder.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc)
    print(
        f"seed {args.seed}, {args.rounds} rounds, logs in {folder}, started {started:%Y-%m-%d %H:%M} UTC",
        flush=True,
    )
    results = campaign(args, folder)
    minutes = (datetime.now(timezone.utc) - started).total_seconds() / 60
    print(f"\nseed {args.seed}, {len(results)} rounds in {minutes:.0f} min, {started:%Y-%m-%d} UTC")
    print(table(results))
    (folder / "results.json").write_text(json.dumps(results, indent=1))
    return 1 if failures(results) else 0


if __name__ == "__main__":
    sys.exit(main())
