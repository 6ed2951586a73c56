"""python -m producer as a user runs it: real processes, real Redis, real worker."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from producer.cli.codes import RET_CONNECT, RET_FAILED, RET_OK, RET_UNKNOWN, RET_USAGE
from producer.local import LocalStack, free_port
from tests.helpers import (
    ROOT,
    audio_file,
    ctrl_c_as_on_a_terminal,
    references,
    run_module,
    wait_until,
    word_error_rate,
)

pytestmark = pytest.mark.integration


def run_cli(*args: str, redis_url: str | None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return run_module("producer", *args, redis_url=redis_url, timeout=timeout)


def test_submit_without_wait_prints_task_ids(stack: LocalStack):
    done = run_cli(str(audio_file("jfk.flac")), redis_url=stack.url)
    assert done.returncode == RET_OK, done.stderr
    task_id, path = done.stdout.strip().split("\t")
    assert len(task_id) == 36 and path == str(audio_file("jfk.flac"))


def test_wait_prints_the_transcript(stack: LocalStack):
    done = run_cli(str(audio_file("jfk.flac")), "--wait", redis_url=stack.url)
    assert done.returncode == RET_OK, done.stderr
    assert word_error_rate(str(references()["jfk.flac"]["text"]), done.stdout) <= 0.1


@pytest.mark.parametrize("fmt", ["json", "txt", "srt", "vtt", "tsv"])
def test_format_and_out_write_one_file_per_input(stack: LocalStack, tmp_path: Path, fmt: str):
    done = run_cli(str(audio_file("jfk.flac")), "--format", fmt, "--out", str(tmp_path), redis_url=stack.url)
    assert done.returncode == RET_OK, done.stderr
    written = tmp_path / f"jfk.{fmt}"
    assert done.stdout.strip() == str(written)
    assert "country" in written.read_text()


def test_directories_and_globs_are_expanded(stack: LocalStack, tmp_path: Path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.flac", "b.flac"):
        (folder / name).write_bytes(audio_file("jfk.flac").read_bytes())
    (folder / "notes.txt").write_text("not audio")
    done = run_cli(str(folder), redis_url=stack.url)
    assert done.returncode == RET_OK, done.stderr
    assert [line.split("\t")[1] for line in done.stdout.splitlines()] == [
        str(folder / "a.flac"),
        str(folder / "b.flac"),
    ]
    done = run_cli(str(folder / "*.flac"), "--wait", redis_url=stack.url)
    assert done.returncode == RET_OK and done.stdout.count("==>") == 2


def test_a_failed_job_exits_1_and_says_why(stack: LocalStack, tmp_path: Path):
    missing = tmp_path / "missing.wav"
    done = run_cli(str(missing), str(audio_file("jfk.flac")), "--wait", redis_url=stack.url)
    assert done.returncode == RET_FAILED
    assert f"failed: {missing}: AudioNotFoundError: no such file" in done.stderr
    assert "country" in done.stdout, "the good file is still transcribed"


def test_no_input_is_a_usage_error():
    done = run_cli(redis_url=None)
    assert done.returncode == RET_USAGE and "name at least one audio file" in done.stderr


def test_an_unreachable_broker_exits_3_without_leaking_the_password():
    url = f"redis://:s3cret-pass@127.0.0.1:{free_port()}/0"
    done = run_cli(str(audio_file("jfk.flac")), redis_url=url, timeout=120)
    assert done.returncode == RET_CONNECT, done.stderr
    assert "cannot reach the broker" in done.stderr
    assert "s3cret-pass" not in done.stderr + done.stdout


def test_quick_start_local_run_transcribes_the_samples():
    """README's first command (after set-up): no REDIS_URL, a private stack, the shipped samples."""
    done = run_cli("--local", redis_url=None, timeout=600)
    assert done.returncode == RET_OK, done.stderr
    assert "Traceback" not in done.stderr and "ERROR" not in done.stderr, "a clean exit: " + done.stderr
    assert "==> " + str(ROOT / "samples" / "jfk.flac") in done.stdout
    assert word_error_rate(str(references()["jfk.flac"]["text"]), done.stdout.split("jfk.flac <==")[1]) <= 0.1


def test_channels_option_labels_each_speaker(stack: LocalStack):
    done = run_cli(
        str(audio_file("stereo_diarization.wav")),
        "--channels",
        "agent,customer",
        "--wait",
        redis_url=stack.url,
    )
    assert done.returncode == RET_OK, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("[agent] ") and "wizard" in line for line in lines), done.stdout
    assert any(line.startswith("[customer] ") and "horizon" in line.lower() for line in lines), done.stdout


@pytest.mark.parametrize(("flag", "marker"), [("--highlight-words", "<u>"), ("--word-level", None)])
def test_word_cues_from_the_cli(stack: LocalStack, tmp_path: Path, flag: str, marker: str | None):
    import srt

    done = run_cli(
        str(audio_file("jfk.flac")), "--format", "srt", "--out", str(tmp_path), flag, redis_url=stack.url
    )
    assert done.returncode == RET_OK, done.stderr
    cues = list(srt.parse((tmp_path / "jfk.srt").read_text()))
    assert len(cues) >= 20, "a cue per word (22 words in jfk.flac)"
    if marker:  # one underlined cue per word (plus plain cues in the pauses between words)
        assert sum(marker in cue.content for cue in cues) >= 20
    else:
        assert all(len(cue.content.split()) == 1 for cue in cues)


def test_word_cues_need_a_subtitle_format():
    done = run_cli(str(audio_file("jfk.flac")), "--word-level", redis_url=None)
    assert done.returncode == RET_USAGE and "apply to --format srt and vtt" in done.stderr


def test_fanout_seconds_splits_a_long_file_across_the_fleet(stack: LocalStack, tmp_path: Path):
    from evaluation.workloads import referenced_mix

    mix = tmp_path / "mix.wav"
    referenced_mix(130, mix)
    done = run_cli(str(mix), "--fanout-seconds", "60", "--format", "json", redis_url=stack.url)
    assert done.returncode == RET_OK, done.stderr
    result = json.loads(done.stdout)
    assert len(result["pieces"]) == 3 and "country" in result["text"]
    bad = run_cli(str(mix), "--fanout-seconds", "5", "--wait", redis_url=stack.url)
    assert bad.returncode == RET_FAILED and "fanout_seconds" in bad.stderr


def test_batch_sends_clip_jobs_that_a_worker_decodes_together(stack: LocalStack, tmp_path: Path):
    # The session's worker keeps the default prefetch multiplier of 1: a batch of at most 2.
    files = [str(audio_file("jfk.flac")), str(audio_file("hotwords.mp3"))]
    done = run_cli(*files, "--batch", "--format", "json", "--out", str(tmp_path), redis_url=stack.url)
    assert done.returncode == RET_OK, done.stderr
    results = [json.loads((tmp_path / f"{Path(f).stem}.json").read_text()) for f in files]
    assert "country" in results[0]["text"] and "folder" in results[1]["text"]
    assert all(r["decoder"] in ("batched", "sequential") for r in results)
    assert any("batch" in r for r in results), "the two clips waiting together were decoded as one batch"
    missing = run_cli(str(tmp_path / "missing.wav"), "--batch", "--wait", redis_url=stack.url)
    assert missing.returncode == RET_FAILED and "AudioNotFoundError" in missing.stderr


def test_one_cli_with_subcommands_fetches_a_result_by_id(stack: LocalStack, tmp_path: Path):
    submitted = run_cli("submit", str(audio_file("jfk.flac")), redis_url=stack.url)
    assert submitted.returncode == RET_OK, submitted.stderr
    task_id = submitted.stdout.split("\t")[0]
    fetched = run_cli("result", task_id, "--wait", "120", "--format", "srt", redis_url=stack.url)
    assert fetched.returncode == RET_OK, fetched.stderr
    assert fetched.stdout.startswith("1\n00:00:") and "country" in fetched.stdout
    written = run_cli("result", task_id, "--format", "vtt", "--out", str(tmp_path), redis_url=stack.url)
    assert written.stdout.strip() == str(tmp_path / "jfk.vtt")
    assert "WEBVTT" in (tmp_path / "jfk.vtt").read_text()
    unknown = run_cli("result", "no-such-job", redis_url=stack.url)
    assert unknown.returncode == RET_UNKNOWN and "unknown job no-such-job" in unknown.stderr


def test_json_for_several_files_is_json_lines(stack: LocalStack):
    files = [str(audio_file("jfk.flac")), str(audio_file("hotwords.mp3"))]
    done = run_cli(*files, "--format", "json", redis_url=stack.url)
    assert done.returncode == RET_OK, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [Path(r["audio_path"]).name for r in results] == ["jfk.flac", "hotwords.mp3"]


def test_inputs_that_cannot_run_are_refused_before_anything_starts(tmp_path: Path):
    demo = run_cli("demo", str(tmp_path / "missing.wav"), redis_url=None, timeout=30)
    assert demo.returncode == RET_USAGE and "no such file" in demo.stderr
    assert "starting a private Redis" not in demo.stderr
    for day in ("mon", "tue"):
        (tmp_path / day).mkdir()
        (tmp_path / day / "call.wav").write_bytes(audio_file("jfk.flac").read_bytes())
    clash = run_cli(str(tmp_path / "*" / "call.wav"), "--out", str(tmp_path / "out"), redis_url=None)
    assert clash.returncode == RET_USAGE and "would both be written as call.txt" in clash.stderr
    zero = run_cli(str(audio_file("jfk.flac")), "--wait", "--timeout", "0", redis_url=None)
    assert zero.returncode == RET_USAGE and "must be more than 0 seconds" in zero.stderr


def test_a_url_celery_cannot_use_is_one_error_line_and_exit_3():
    for args in (("status", "some-id"), (str(audio_file("jfk.flac")),)):
        done = run_cli(*args, redis_url="http://x", timeout=60)
        assert done.returncode == RET_CONNECT, done.stderr
        assert "Traceback" not in done.stderr and done.stderr.startswith("error: ")


def test_run_demo_reads_files_relative_to_where_it_was_called(tmp_path: Path):
    (tmp_path / "mine.flac").write_bytes(audio_file("jfk.flac").read_bytes())
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CELERY_BROKER_URL")}
    done = subprocess.run(
        [str(ROOT / "run"), "demo", "mine.flac", "--format", "txt"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == RET_OK, done.stderr
    assert "your country" in done.stdout


def test_ctrl_c_in_run_demo_lists_the_job_and_stops_what_the_demo_started_at_once(tmp_path: Path):
    # A terminal's Ctrl-C sends SIGINT to the whole foreground group: ./run, the CLI and the
    # worker it started. The worker alone would wait for its running job (a warm shutdown).
    from evaluation.audio import concatenate
    from producer import Client
    from producer.local import RedisServer

    long_file = concatenate(audio_file("jfk.flac"), 24, tmp_path / "long.wav")  # 288 s of speech
    redis = RedisServer().start()  # the demo's stack uses it, so the test can see the job run
    try:
        env = {**os.environ, "REDIS_URL": redis.url, "ASR_BATCH_SIZE": "1"}
        demo = subprocess.Popen(
            [str(ROOT / "run"), "demo", str(long_file), "--format", "txt"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            preexec_fn=ctrl_c_as_on_a_terminal,
        )
        with Client(redis.url, redis.url) as client:
            wait_until(lambda: any(j.state == "PROGRESS" for j in client.list_jobs()), 180, "job running")
            interrupted = time.monotonic()
            os.killpg(demo.pid, signal.SIGINT)
            _, stderr = demo.communicate(timeout=60)
            stopped = time.monotonic() - interrupted
            assert demo.returncode == 130, stderr
            assert "Traceback" not in stderr
            assert re.search(r"[0-9a-f-]{36}\t\S*long\.wav\tstill running; fetch it with: asr result", stderr)
            assert "stopping the private worker and Redis" in stderr
            assert stopped < 30, f"the demo took {stopped:.0f} s to stop"
            assert client.app.control.ping(timeout=1.0) == [], "the demo's worker is gone"
    finally:
        redis.stop()
