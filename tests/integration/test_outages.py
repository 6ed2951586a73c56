"""A Redis crash while jobs run, jobs sent by a bare Celery client (the task by name only).

Both scenarios SIGKILL Redis (a crash or an OOM kill, not a clean shutdown) once two jobs
run on a 2-child worker, with 3-minute and 35 s files queued (jfk.flac repeated: 15 and
3 copies), and send more jobs after it: the worker's main process must stay up, and
every job end SUCCESS with a right transcript (evaluation/outages.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluation.outages import redis_crash, sentinel_crash

pytestmark = pytest.mark.integration

BEFORE = [15, 3, 15, 3]
AFTER = [3, 3]


def assert_survived(report: dict) -> None:
    problems = {k: report[k] for k in ("worker_exits", "not_success", "wrong_transcripts") if report[k]}
    assert not problems, f"{problems} (worker log: {report['log']})"
    assert report["jobs"] == len(BEFORE) + len(AFTER)


def test_sentinel_master_sigkilled_mid_jobs_the_worker_follows_and_every_job_succeeds(
    tmp_path: Path, redis_server_binary: str
):
    report = sentinel_crash(tmp_path, before=BEFORE, after=AFTER)
    assert report["seconds_to_promotion"] > 0
    assert_survived(report)


def test_aof_redis_sigkilled_and_restarted_on_its_data_every_job_succeeds(
    tmp_path: Path, redis_server_binary: str
):
    report = redis_crash(tmp_path, before=BEFORE, after=AFTER, down=5.0)
    assert_survived(report)
