"""plan_job: how a job runs, as a table."""

from __future__ import annotations

import pytest

from worker.pipeline.options import TranscribeOptions
from worker.pipeline.plan import (
    BATCHED,
    CHANNELS,
    FANOUT,
    SEQUENTIAL,
    WHOLE,
    Plan,
    plan_job,
    uses_batched_pipeline,
)

DEFAULTS = {"fanout_seconds": 300.0, "chunk_seconds": 600.0, "batch_size": 8}
LADDER = TranscribeOptions(temperature=(0.0, 0.4))


@pytest.mark.parametrize(
    ("seconds", "options", "settings", "plan"),
    [
        # one window: the sequential decoder, in this child
        (12.0, TranscribeOptions(), {}, Plan(WHOLE, SEQUENTIAL, chunk_seconds=600.0)),
        # longer than a window: the batched decoder
        (31.0, TranscribeOptions(), {}, Plan(WHOLE, BATCHED, chunk_seconds=600.0)),
        (300.0, TranscribeOptions(), {}, Plan(WHOLE, BATCHED, chunk_seconds=600.0)),
        # longer than ASR_FANOUT_SECONDS: pieces across the fleet, each batched
        (301.0, TranscribeOptions(), {}, Plan(FANOUT, BATCHED, piece_seconds=300.0)),
        # the job's own fanout_seconds wins over the setting; 0 never splits
        (200.0, TranscribeOptions(fanout_seconds=60.0), {}, Plan(FANOUT, BATCHED, piece_seconds=60.0)),
        (9999.0, TranscribeOptions(fanout_seconds=0.0), {}, Plan(WHOLE, BATCHED, chunk_seconds=600.0)),
        (9999.0, TranscribeOptions(), {"fanout_seconds": 0.0}, Plan(WHOLE, BATCHED, chunk_seconds=600.0)),
        # per-channel jobs stay in one child, however long
        (9999.0, TranscribeOptions(channels="split"), {}, Plan(CHANNELS, BATCHED, chunk_seconds=600.0)),
        (20.0, TranscribeOptions(channels=("a", "b")), {}, Plan(CHANNELS, SEQUENTIAL, chunk_seconds=600.0)),
        # ASR_BATCH_SIZE=1, or a temperature ladder: the sequential decoder only
        (120.0, TranscribeOptions(), {"batch_size": 1}, Plan(WHOLE, SEQUENTIAL, chunk_seconds=600.0)),
        (120.0, LADDER, {}, Plan(WHOLE, SEQUENTIAL, chunk_seconds=600.0)),
        (3600.0, LADDER, {}, Plan(FANOUT, SEQUENTIAL, piece_seconds=300.0)),
        (120.0, TranscribeOptions(temperature=0.2), {}, Plan(WHOLE, BATCHED, chunk_seconds=600.0)),
    ],
)
def test_plan_job(seconds, options, settings, plan):
    assert plan_job(seconds, options, **(DEFAULTS | settings)) == plan


def test_a_job_without_a_task_id_cannot_become_a_chord():
    assert plan_job(3600.0, TranscribeOptions(), **DEFAULTS, can_split=False).route == WHOLE


@pytest.mark.parametrize(
    ("seconds", "options", "batch_size", "batched"),
    [
        (29.9, TranscribeOptions(), 8, False),  # one window: nothing to batch
        (31.0, TranscribeOptions(), 8, True),
        (3600.0, TranscribeOptions(), 1, False),  # ASR_BATCH_SIZE=1 keeps the sequential decoder
        (3600.0, LADDER, 8, False),  # only it walks a ladder
        (3600.0, TranscribeOptions(temperature=0.2), 8, True),
    ],
)
def test_uses_batched_pipeline(seconds, options, batch_size, batched):
    assert uses_batched_pipeline(seconds, options, batch_size) is batched
