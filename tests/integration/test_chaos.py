"""A short seeded fault campaign (bench/chaos.py): a real fleet of two worker nodes, three
producers streaming jobs, and one fault a round; ``python -m bench.chaos`` runs it long."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos import campaign, failures, parse, table

pytestmark = pytest.mark.integration


def test_a_short_seeded_campaign_loses_nothing_and_no_worker_exits(tmp_path: Path, redis_server_binary: str):
    # Small jobs (copies of jfk.flac: 12 s, 24 s, 48 s, and 96 s split into 60 s pieces) so
    # that three rounds take minutes on two cores: a failover, a Redis crash, a node killed.
    args = parse(
        "--seed 7 --rounds 3 --faults sentinel_kill,redis_restart,node_kill --clip 1 --medium 2"
        " --long 4 --fanout 8 --fanout-seconds 60 --drain 420 --post 5".split()
    )
    results = campaign(args, tmp_path)
    print(table(results))
    assert sorted(r["kind"] for r in results) == ["node_kill", "redis_restart", "sentinel_kill"]
    assert all(r["jobs"] > 0 for r in results), results
    assert {p for r in results for p in r["by"]} == {"python", "celery", "http"}, results
    assert failures(results) == 0, results
    assert all(not r["lost_in_window"] for r in results if r["kind"] != "sentinel_kill"), results
