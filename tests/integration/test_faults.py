"""Fault injection, small scale (python -m bench.faults runs the same scenarios larger)."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from evaluation.audio import SEQUENTIAL
from evaluation.faults import _active_child_pids, kill_children, redis_restart, speech_file, warm_shutdown
from producer import Client, TranscriptionFailed
from producer.local import LocalStack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 3 x jfk.flac with 1 s pauses: 36 s of real speech, a few seconds of work per job.
    return speech_file(3, tmp_path_factory.mktemp("audio"))


def assert_nothing_lost(report: dict) -> None:
    assert report["lost"] == [], report
    assert report["failed"] == {}, report
    assert report["succeeded"] == report["jobs"], report
    assert report["transcribed_twice"] == [], report


def test_sigkill_of_children_mid_job_loses_nothing(tmp_path: Path):
    # 96 s of speech on the sequential decoder: seconds of work on a fast machine too, so each
    # kill lands in the middle of a job (with 36 s batched, 1.2 s a job, a kill could land
    # between two jobs, or twice on the same one).
    long_speech = speech_file(8, tmp_path)
    with LocalStack(env={"ASR_BATCH_SIZE": "1"}, log_path=tmp_path / "worker.log") as stack:
        client = Client(stack.url, stack.url)
        report = kill_children(stack, client, long_speech, jobs=4, kills=2)
        client.close()
    assert report["kills"] == 2 and len(set(report["killed_jobs"])) == 2
    assert_nothing_lost(report)
    assert report["redelivered"] >= 2, "each killed job ran again"


def test_redis_restart_with_jobs_queued_and_running_loses_nothing(tmp_path: Path, speech: Path):
    report = redis_restart(tmp_path, speech, jobs=6)
    assert report["worker_alive_after"], "the worker reconnected by itself"
    assert_nothing_lost(report)


def test_warm_shutdown_mid_job_then_a_new_worker_loses_nothing(tmp_path: Path, speech: Path):
    # The sequential decoder (ASR_BATCH_SIZE=1): the batched one could finish all six jobs
    # before the first worker is seen busy and stopped.
    report = warm_shutdown(tmp_path, speech, jobs=6, env={"ASR_BATCH_SIZE": "1"})
    assert_nothing_lost(report)
    assert 1 <= report["done_before_restart"] < report["jobs"], "the first worker finished its running jobs"


def test_a_job_that_kills_its_child_every_time_fails_after_the_cap(tmp_path: Path, speech: Path):
    # Stands in for a file that crashes the decoder: the child is SIGKILLed each time it runs the job.
    long_speech = speech_file(8, tmp_path)  # 96 s
    with LocalStack(concurrency=1, env={"ASR_MAX_DELIVERIES": "2"}, log_path=tmp_path / "w.log") as stack:
        client = Client(stack.url, stack.url)
        # The sequential decoder keeps the job running long enough (several seconds) to kill.
        job = client.submit(long_speech, **SEQUENTIAL)
        kills = 0
        deadline = time.monotonic() + 120
        while not job.ready() and time.monotonic() < deadline:
            pids = _active_child_pids(stack)
            if pids:
                try:
                    os.kill(pids[0], signal.SIGKILL)
                except ProcessLookupError:
                    continue  # it ended between the look and the kill
                kills += 1
                time.sleep(1.0)
            time.sleep(0.1)
        with pytest.raises(TranscriptionFailed) as caught:
            job.result(timeout=30)
        assert caught.value.error_type == "RedeliveryLimitError"
        # Two deaths use up ASR_MAX_DELIVERIES=2; the third start fails at once. (A poll can
        # still catch that brief third start and kill it too, so count "at least".)
        starts = int(re.search(r"started (\d+) times", caught.value.message).group(1))
        assert kills >= 2 and starts >= 3, (kills, caught.value.message)
        assert "country" in client.transcribe(speech, timeout=120)["text"], "the worker still serves"
        client.close()


def _limits_stack(tmp_path: Path, **env: str) -> LocalStack:
    return LocalStack(concurrency=1, env=env, log_path=tmp_path / "limits.log")


def test_soft_time_limit_fails_the_job_with_a_typed_error_and_the_next_succeeds(tmp_path: Path):
    long_file = speech_file(24, tmp_path)  # 288 s of speech
    short = speech_file(1, tmp_path)
    with _limits_stack(tmp_path, ASR_SOFT_TIME_LIMIT="2", ASR_HARD_TIME_LIMIT="30") as stack:
        client = Client(stack.url, stack.url)
        with pytest.raises(TranscriptionFailed) as caught:
            # The slower sequential decoder: about 10 s of work (96 s took 3.6 s on a fast day).
            client.transcribe(long_file, timeout=120, **SEQUENTIAL)
        assert caught.value.error_type == "TranscriptionTimeoutError"
        assert "soft time limit" in caught.value.message
        assert "country" in client.transcribe(short, timeout=60)["text"]
        client.close()


def test_hard_time_limit_replaces_the_child_and_the_next_job_succeeds(tmp_path: Path):
    # 288 s of speech, decoded sequentially: about 10 s of work here, far past the 2 s limit on
    # any CPU (96 s batched took 1.5 s on a fast day, under it).
    long_file = speech_file(24, tmp_path)
    short = speech_file(1, tmp_path)
    with _limits_stack(tmp_path, ASR_SOFT_TIME_LIMIT="0", ASR_HARD_TIME_LIMIT="2") as stack:
        client = Client(stack.url, stack.url)
        before = set(stack.child_pids())
        with pytest.raises(TranscriptionFailed) as caught:
            client.transcribe(long_file, timeout=120, **SEQUENTIAL)
        # Not the error of whatever the stop interrupted (an import: RuntimeError; stopped_by).
        assert caught.value.error_type == "TimeLimitExceeded"
        assert "country" in client.transcribe(short, timeout=60)["text"]
        assert set(stack.child_pids()).isdisjoint(before), "the child that hit the hard limit was replaced"
        client.close()


def test_audio_derived_deadline_fails_a_job_that_runs_too_slow(tmp_path: Path):
    long_file = speech_file(8, tmp_path)
    # 0 s base + 0.001 s per audio second: 0.096 s for 96 s of audio, far less than it needs
    # (1.5 s batched on a fast day: 0.01 s a second, 0.96 s, was too close).
    env = {"ASR_TIMEOUT_BASE": "0", "ASR_TIMEOUT_PER_AUDIO_SECOND": "0.001"}
    with _limits_stack(tmp_path, **env) as stack:
        client = Client(stack.url, stack.url)
        with pytest.raises(TranscriptionFailed) as caught:
            client.transcribe(long_file, timeout=120)
        assert caught.value.error_type == "TranscriptionTimeoutError"
        assert "deadline" in caught.value.message
        client.close()
