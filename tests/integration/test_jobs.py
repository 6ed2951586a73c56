"""Job control end to end: status, list and cancel against a real worker running real jobs.

The long jobs are real speech (jfk.flac 24 times with 1 s pauses, 288 s: one job,
under the 300 s fan-out threshold), long enough to be caught running on a fast
machine; every one of them is cancelled, not waited for.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluation.audio import concatenate
from producer import Client, Job
from producer.jobs import RET_CONNECT, RET_ENDED, RET_OK, RET_UNKNOWN
from producer.local import LocalStack, free_port
from tests.helpers import audio_file, run_module, wait_until, worker_log, worker_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def jobs_stack(tmp_path_factory: pytest.TempPathFactory, redis_server_binary: str) -> Iterator[LocalStack]:
    # Its own worker: these tests cancel and kill jobs, which other modules must not see. The
    # sequential decoder keeps the long file busy for a while (the batched one is 2x faster).
    with worker_stack(tmp_path_factory, "jobs-worker", ASR_BATCH_SIZE="1") as running:
        yield running


@pytest.fixture()
def jobs_client(jobs_stack: LocalStack) -> Iterator[Client]:
    with Client(jobs_stack.url, jobs_stack.url) as c:
        yield c


@pytest.fixture(scope="module")
def long_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return concatenate(audio_file("jfk.flac"), 24, tmp_path_factory.mktemp("long") / "jfk_x24.wav")


def _wait_running(client: Client, job: Job, timeout: float = 60.0) -> None:
    wait_until(lambda: client.status(job.id).state == "PROGRESS", timeout, f"job {job.id} never started")


def run_jobs_cli(*args: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    return run_module("producer.jobs", *args, redis_url=redis_url, timeout=120)


def test_a_queued_job_is_cancelled_and_never_runs(
    jobs_client: Client, jobs_stack: LocalStack, long_file: Path
):
    busy = [jobs_client.submit(long_file) for _ in range(2)]
    for job in busy:
        _wait_running(jobs_client, job)
    queued = jobs_client.submit(audio_file("jfk.flac"))
    before = jobs_client.status(queued.id)
    assert (before.state, before.queue_position, before.known) == ("PENDING", 1, True)
    assert before.path == str(audio_file("jfk.flac")) and before.name == "asr.transcribe"

    assert jobs_client.cancel(queued.id).state == "REVOKED"
    for job in busy:  # free both children: the worker now takes the queued job off the queue
        assert jobs_client.cancel(job.id).state == "REVOKED"
    discarded = f"Discarding revoked task: asr.transcribe[{queued.id}]"
    wait_until(lambda: discarded in worker_log(jobs_stack), 60, "the worker never dequeued the revoked job")
    # A job queued after it runs: had the revoked one run, it would have ended first.
    assert "country" in jobs_client.transcribe(audio_file("jfk.flac"), timeout=120)["text"]
    log = worker_log(jobs_stack)
    assert f"asr.transcribe[{queued.id}] succeeded" not in log
    assert jobs_client.status(queued.id).state == "REVOKED"
    assert queued.state == "REVOKED"


def test_a_running_job_is_cancelled_and_the_worker_goes_on(
    jobs_client: Client, jobs_stack: LocalStack, long_file: Path
):
    job = jobs_client.submit(long_file)
    _wait_running(jobs_client, job)
    active = jobs_client.app.control.inspect(timeout=2).active() or {}
    [child] = [r["worker_pid"] for requests in active.values() for r in requests if r["id"] == job.id]
    started = time.monotonic()
    after = jobs_client.cancel(job.id)
    assert after.state == "REVOKED", "the state says so at once"
    assert time.monotonic() - started < 10, "cancelling does not wait for the job to finish"
    # The revoke's reason reads "revoked" until the worker has killed the child, then "terminated".
    wait_until(lambda: "terminated" in str(jobs_client.status(job.id).error), 30, "the child was not killed")
    assert "country" in jobs_client.transcribe(audio_file("jfk.flac"), timeout=120)["text"]
    # The pool replaces a dead child when it next maintains itself: wait for it.
    wait_until(
        lambda: child not in (pids := jobs_stack.child_pids()) and len(pids) == 2,
        60,
        f"child {child} was not replaced",
    )
    assert jobs_client.status(job.id).state == "REVOKED"


def test_status_and_list_show_a_running_job_from_the_cli(
    jobs_client: Client, jobs_stack: LocalStack, long_file: Path
):
    job = jobs_client.submit(long_file)
    _wait_running(jobs_client, job)

    status = run_jobs_cli("status", job.id, redis_url=jobs_stack.url)
    assert status.returncode == RET_OK, status.stderr
    task_id, state, progress, worker, path = status.stdout.strip().split("\t")
    assert (task_id, state, path) == (job.id, "PROGRESS", str(long_file))
    assert progress.endswith("/288 s)") and "%" in progress and worker.startswith("local-")

    as_json = json.loads(run_jobs_cli("--json", "status", job.id, redis_url=jobs_stack.url).stdout)
    assert as_json["state"] == "PROGRESS" and 0 <= as_json["progress"]["percent"] <= 100
    assert as_json["progress"]["seconds_total"] == pytest.approx(288.0, abs=0.5)

    listed = run_jobs_cli("list", redis_url=jobs_stack.url)
    assert listed.returncode == RET_OK, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.strip().splitlines()]
    assert rows[0] == ["id", "state", "progress", "worker", "path"]
    [row] = [r for r in rows[1:] if r[0] == job.id]
    assert row[1] == "PROGRESS" and row[4] == str(long_file)
    assert [j.id for j in jobs_client.list_jobs() if j.id == job.id] == [job.id]

    cancelled = run_jobs_cli("cancel", job.id, redis_url=jobs_stack.url)
    assert cancelled.returncode == RET_OK, cancelled.stderr
    assert cancelled.stdout.split("\t")[1] == "REVOKED"
    again = run_jobs_cli("cancel", job.id, redis_url=jobs_stack.url)
    assert again.returncode == RET_ENDED and "already ended (REVOKED)" in again.stderr


def test_an_unknown_id_and_an_unreachable_broker_have_their_exit_codes(jobs_stack: LocalStack):
    unknown = run_jobs_cli("status", str(uuid.uuid4()), redis_url=jobs_stack.url)
    assert unknown.returncode == RET_UNKNOWN and "unknown job" in unknown.stderr
    down = run_jobs_cli("list", redis_url=f"redis://127.0.0.1:{free_port()}/0")
    assert down.returncode == RET_CONNECT and "cannot reach" in down.stderr


def test_a_split_job_is_cancelled_its_pieces_stop_and_the_children_go_on(
    jobs_client: Client, jobs_stack: LocalStack, tmp_path: Path
):
    # 12 minutes of speech in pieces of at most 60 s (about 15), two running at a time.
    long = concatenate(audio_file("jfk.flac"), 60, tmp_path / "jfk_x60.wav")
    children = sorted(jobs_stack.child_pids())
    job = jobs_client.submit(long, fanout_seconds=60)
    wait_until(lambda: (job.progress or {}).get("seconds_done", 0) > 0, 120, "the pieces never started")
    progress = job.progress or {}
    pieces, done_before = progress["pieces"], progress["pieces_done"]
    assert pieces >= 12
    held = jobs_client.list_jobs()
    assert {j.id for j in held} == {job.id}, "the pieces are listed as their job"
    assert all(j.name == "asr.transcribe" and j.progress for j in held if j.state == "PROGRESS")

    started = time.monotonic()
    after = jobs_client.cancel(job.id)
    assert after.state == "REVOKED" and "split into pieces" in (after.error or "")
    assert time.monotonic() - started < 10, "cancelling does not wait for the pieces"

    # The merge comes last, once every piece has returned: it leaves the job REVOKED.
    merged = (f"Discarding revoked task: asr.merge_pieces[{job.id}]", f"job {job.id} cancelled: its pieces")
    wait_until(lambda: any(line in worker_log(jobs_stack) for line in merged), 120, "the merge never came")
    log = worker_log(jobs_stack)
    lines = [line for line in log.splitlines() if f"job {job.id} cancelled: piece" in line]
    stopped = [line for line in lines if line.endswith("stops")]
    not_started = [line for line in lines if line.endswith("not started")]
    assert stopped, "a running piece stopped in the middle"
    # Two pieces run at a time: all but those (and any that ended as the cancel went out) never start.
    assert len(not_started) >= pieces - done_before - 4, lines
    assert jobs_client.status(job.id).state == "REVOKED"
    assert f"asr.merge_pieces[{job.id}] succeeded" not in log
    # No child was killed for it: the same two take the next job.
    assert sorted(jobs_stack.child_pids()) == children
    assert "country" in jobs_client.transcribe(audio_file("jfk.flac"), timeout=120)["text"]
