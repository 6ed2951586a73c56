"""Cross-job batching: clip jobs decoded together by one child, each job still its own.

A worker of its own, set up as README "Cross-job batching" says: a prefetch
multiplier of 8 and 1 s to gather a batch, so the jobs a test submits at once
meet in one batch. Every transcript is compared with the same file's solo
``asr.transcribe`` result from the same worker.
"""

from __future__ import annotations

import gc
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from faster_whisper.audio import decode_audio

from evaluation.audio import concatenate, write_wav
from evaluation.scoring import errors
from producer import Client, TranscriptionFailed
from producer.local import LocalStack
from tests.helpers import audio_file, references, wait_for_log, wait_until, worker_log, worker_stack

pytestmark = pytest.mark.integration

CLIP_ENV = {"CELERY_WORKER_PREFETCH_MULTIPLIER": "8", "ASR_CLIP_BATCH": "8", "ASR_CLIP_WAIT": "1.0"}


def reads_jfk(text: str, copies: int) -> bool:
    """Whether ``text`` is ``copies`` readings of jfk.flac, none of its clauses (7-8 words) lost.

    Scored, not counted: tiny.en's int8 numerics differ between CPUs ("ask" or "asked",
    "your" or "you"), which a count of one word would take for a loss.
    """
    found = errors(" ".join([str(references()["jfk.flac"]["text"])] * copies), text)
    return found.deletions <= 3 and found.wer <= 0.2


@pytest.fixture(scope="module")
def clip_stack(tmp_path_factory: pytest.TempPathFactory, redis_server_binary: str) -> Iterator[LocalStack]:
    # Its own worker: one test kills its children.
    with worker_stack(tmp_path_factory, "clip-worker", **CLIP_ENV) as running:
        yield running
        # Results polled here unsubscribe as they are collected: collect them while Redis runs.
        gc.collect()


@pytest.fixture()
def clip_client(clip_stack: LocalStack) -> Iterator[Client]:
    with Client(clip_stack.url, clip_stack.url) as c:
        yield c


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Real speech clips of 2-25 s, and 5 s of digital silence."""
    folder = tmp_path_factory.mktemp("clips")
    stereo = audio_file("stereo_diarization.wav")
    left, right = decode_audio(str(stereo), sampling_rate=16000, split_stereo=True)
    jfk = decode_audio(str(audio_file("jfk.flac")), sampling_rate=16000)
    hotwords = decode_audio(str(audio_file("hotwords.mp3")), sampling_rate=16000)
    pause = np.zeros(8000, dtype=np.float32)
    return [
        audio_file("jfk.flac"),
        audio_file("hotwords.mp3"),
        write_wav(folder / "left.wav", left),
        write_wav(folder / "right.wav", right),
        write_wav(folder / "jfk_tail.wav", jfk[3 * 16000 :]),
        # 25 s of four speakers back to back: the batched pass stops early on such a
        # window, so this clip is the one decoded alone to keep its solo transcript.
        write_wav(folder / "mix.wav", np.concatenate([hotwords, pause, jfk, pause, left, pause, right])),
        write_wav(folder / "silence.wav", np.zeros(5 * 16000, dtype=np.float32)),
    ]


def _timeline(result: dict) -> list[tuple[float, float, str]]:
    return [(s["start"], s["end"], s["text"]) for s in result["segments"]]


def test_waiting_clips_are_decoded_as_one_batch_and_each_gets_its_solo_transcript(
    clip_client: Client, clips: list[Path]
):
    jobs = clip_client.submit_many(clips, batch=True)
    batched = [job.result(timeout=180) for job in jobs]
    solo = [clip_client.transcribe(path, timeout=120) for path in clips]
    for path, job, together, alone in zip(clips, jobs, batched, solo, strict=True):
        assert together["audio_path"] == str(path) and alone["decoder"] == "sequential"
        assert together["text"] == alone["text"], path.name
        assert _timeline(together) == _timeline(alone), path.name
        assert together["duration"] == alone["duration"]
        assert clip_client.status(job.id).state == "SUCCESS"
    assert batched[-1]["text"] == "" and batched[-1]["segments"] == []
    shared = [r for r in batched if r["decoder"] == "batched"]
    assert len(shared) >= 4, [r["decoder"] for r in batched]
    assert len({r["batch"]["id"] for r in shared}) == 1, "the clips waiting together share one batch"
    assert shared[0]["batch"]["size"] >= len(shared)


def test_a_bad_file_in_a_batch_fails_only_its_own_job(clip_client: Client, tmp_path: Path):
    missing = tmp_path / "missing.wav"
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not audio at all" * 100)
    paths = [audio_file("jfk.flac"), missing, garbage, audio_file("hotwords.mp3")]
    jobs = clip_client.submit_many(paths, batch=True)
    good = [jobs[0].result(timeout=120), jobs[3].result(timeout=120)]
    assert [r["decoder"] for r in good] == ["batched", "batched"]
    assert good[0]["batch"] == good[1]["batch"] and good[0]["batch"]["size"] == 2
    assert reads_jfk(good[0]["text"], 1), good[0]["text"]
    for job, error_type in ((jobs[1], "AudioNotFoundError"), (jobs[2], "AudioDecodeError")):
        with pytest.raises(TranscriptionFailed) as caught:
            job.result(timeout=60)
        assert caught.value.error_type == error_type
        assert str(job.path) in str(caught.value)
    # The worker keeps serving.
    assert "country" in clip_client.transcribe(audio_file("jfk.flac"), timeout=120, batch=True)["text"]


def test_each_job_reports_its_own_progress_while_the_batch_runs(
    clip_client: Client, clip_stack: LocalStack, tmp_path: Path
):
    # 8 clips of 2 x jfk.flac (23 s each) of which one differs in length: one batch of
    # 184 s of windows, several seconds of decoding on this CPU.
    paths = [concatenate(audio_file("jfk.flac"), 2, tmp_path / f"jfk_x2_{i}.wav") for i in range(7)]
    paths.append(concatenate(audio_file("jfk.flac"), 1, tmp_path / "jfk_x1.wav", pause=3.0))
    # Every state the backend stores is also published: listen, rather than poll and maybe miss it.
    store = redis.Redis.from_url(clip_stack.url)
    states = store.pubsub(ignore_subscribe_messages=True)
    states.psubscribe("celery-task-meta-*")
    try:
        jobs = clip_client.submit_many(paths, batch=True)
        results = [job.result(timeout=180) for job in jobs]
        seen: dict[str, list[dict]] = {job.id: [] for job in jobs}
        quiet = 0  # the messages wait in the connection: read until it has none left
        while quiet < 3:
            message = states.get_message(timeout=0.2)
            if message is None or message["type"] != "pmessage":
                quiet += message is None
                continue
            quiet = 0
            meta = json.loads(message["data"])
            if meta["status"] == "PROGRESS" and meta["task_id"] in seen:
                seen[meta["task_id"]].append(meta["result"])
    finally:
        states.close()
        store.close()
    assert all(seen.values()), "each job's PROGRESS was stored"
    for job, result in zip(jobs, results, strict=True):
        assert all(p["seconds_total"] == pytest.approx(result["duration"], abs=0.01) for p in seen[job.id])
    assert results[-1]["duration"] == pytest.approx(14.0, abs=0.1)


def test_a_file_longer_than_a_window_is_handed_over_to_asr_transcribe(
    clip_client: Client, clip_stack: LocalStack, tmp_path: Path
):
    long_file = concatenate(audio_file("jfk.flac"), 4, tmp_path / "jfk_x4.wav")  # 48 s
    job = clip_client.submit(long_file, batch=True)
    result = job.result(timeout=180)
    assert result["duration"] == pytest.approx(48.0, abs=0.5) and "batch" not in result
    assert reads_jfk(result["text"], 4), result["text"]
    handed = f"clip job {job.id} handed over to asr.transcribe (longer than one window)"
    assert handed in worker_log(clip_stack)


def test_a_job_revoked_while_it_waits_for_its_batch_never_runs(clip_client: Client):
    job = clip_client.submit(audio_file("jfk.flac"), batch=True)
    clip_client.cancel(job.id, timeout=5)
    # Its batch flushes within ASR_CLIP_WAIT and drops it; a later clip job runs, it does not.
    assert "country" in clip_client.transcribe(audio_file("jfk.flac"), timeout=120, batch=True)["text"]
    assert clip_client.status(job.id).state == "REVOKED"


def test_a_job_cancelled_while_its_batch_decodes_stays_revoked(
    clip_client: Client, clip_stack: LocalStack, tmp_path: Path
):
    # 8 clips of 23 s: one batch of several seconds of decoding, cancelled as it starts.
    paths = [concatenate(audio_file("jfk.flac"), 2, tmp_path / f"jfk_x2_{i}.wav") for i in range(8)]
    jobs = clip_client.submit_many(paths, batch=True)
    victim = jobs[-1]
    wait_until(lambda: victim.state == "PROGRESS", 60, "the batch never started")
    assert clip_client.cancel(victim.id, timeout=5).state == "REVOKED"
    results = [job.result(timeout=180) for job in jobs[:-1]]
    assert all(reads_jfk(r["text"], 2) for r in results), [r["text"] for r in results]
    wait_for_log(
        clip_stack,
        f"clip job {victim.id} cancelled; nothing stored for it",
        30,
        "the child never noticed the cancel",
    )
    assert clip_client.status(victim.id).state == "REVOKED", "nothing was stored over the cancel"


def test_the_jobs_of_a_batch_whose_child_dies_are_redelivered_and_finish(
    clip_client: Client, clip_stack: LocalStack, tmp_path: Path
):
    paths = [concatenate(audio_file("jfk.flac"), 2, tmp_path / f"jfk_x2_{i}.wav") for i in range(8)]
    jobs = clip_client.submit_many(paths, batch=True)
    wait_until(lambda: any(job.state == "PROGRESS" for job in jobs), 60, "the batch never started")
    for pid in clip_stack.child_pids():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    results = [job.result(timeout=300) for job in jobs]
    assert all(reads_jfk(r["text"], 2) for r in results), [r["text"] for r in results]
    # The jobs of the killed batch came back to the queue and each ran alone as
    # asr.transcribe, its earlier starts counted (jobs of a later batch ran as usual).
    again = [r for r in results if r["deliveries"] > 1]
    # Two starts each: the lost batch's and asr.transcribe's (the hand-over itself decodes nothing).
    assert again and all("batch" not in r for r in again), [r["deliveries"] for r in results]
    assert all(r["deliveries"] == 2 for r in again), [r["deliveries"] for r in results]
    assert "clip batch of 8 jobs lost" in worker_log(clip_stack)
