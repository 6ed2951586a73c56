"""The fault campaign's seeded plan (bench/chaos.py): reproducible, every kind as often as it can be."""

from __future__ import annotations

from collections import Counter

from bench.chaos import plan
from evaluation.chaos_faults import FAULTS


def test_the_same_seed_gives_the_same_plan_and_another_seed_another():
    assert plan(26, 30) == plan(26, 30)
    assert plan(26, 30) != plan(27, 30)


def test_thirty_rounds_strike_each_of_the_five_faults_six_times_at_a_moment_within_the_round():
    rounds = plan(26, 30)
    assert Counter(r["kind"] for r in rounds) == {kind: 6 for kind in FAULTS}
    assert all(3.0 <= r["fault_at"] <= 15.0 for r in rounds)
    assert [r["round"] for r in rounds] == list(range(1, 31))
