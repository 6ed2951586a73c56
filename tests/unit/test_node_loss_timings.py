"""How ASR_NODE_LOSS_SECONDS becomes a heartbeat, a record TTL and a sweep interval."""

from __future__ import annotations

import pytest

from worker.pipeline.errors import ConfigError
from worker.pipeline.settings import Settings
from worker.runtime.liveness import timings


@pytest.mark.parametrize("budget", [2.0, 6.0, 90.0, 600.0])
def test_a_lost_node_is_swept_within_the_budget(budget: float):
    beat, ttl, every = timings(budget)
    assert ttl >= 4 * beat, "several beats may be missed before a live node looks lost"
    assert ttl + every <= budget, "the record expires and a sweep runs within the budget"


def test_default_and_bounds():
    assert Settings.from_env({}).node_loss_seconds == 90.0
    assert Settings.from_env({"ASR_NODE_LOSS_SECONDS": "30"}).node_loss_seconds == 30.0
    with pytest.raises(ConfigError, match="ASR_NODE_LOSS_SECONDS"):
        Settings.from_env({"ASR_NODE_LOSS_SECONDS": "1"})
