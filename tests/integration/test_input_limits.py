"""Bad input, limits and confinement on one worker: each fails typed, none harms the next job."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from evaluation.audio import concatenate, write_wav
from producer import Client, TranscriptionFailed
from producer.local import LocalStack
from tests.helpers import audio_file, worker_log

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def confined(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, Client, Path, Path]]:
    root = tmp_path_factory.mktemp("audio_root")
    outside = tmp_path_factory.mktemp("outside")
    env = {
        "ASR_AUDIO_ROOTS": str(root),
        "ASR_MAX_AUDIO_SECONDS": "20",
        "ASR_MAX_FILE_BYTES": "1000000",
    }
    logs = tmp_path_factory.mktemp("logs")
    with LocalStack(concurrency=1, env=env, log_path=logs / "worker.log") as stack:
        client = Client(stack.url, stack.url)
        yield stack, client, root, outside
        client.close()


def send_raw(client: Client, path: object, **options: object):
    """Send exactly what a foreign producer would, without the library's path handling."""
    result = client.app.send_task("asr.transcribe", args=[path], kwargs=options, queue=client.queue)
    return client.job(result.id, str(path))


def test_every_bad_input_fails_typed_and_a_good_job_then_succeeds(confined):
    stack, client, root, outside = confined
    jfk = audio_file("jfk.flac")
    small = write_wav(root / "ok.wav", _jfk_pcm())  # 11 s, under every limit
    (root / "link_out.wav").symlink_to(write_wav(outside / "secret.wav", _jfk_pcm()))
    (root / "sub").mkdir()
    big = root / "big.flac"
    big.write_bytes(jfk.read_bytes())  # 1.15 MB > ASR_MAX_FILE_BYTES
    long_file = concatenate(jfk, 2, root / "long.wav")  # 24 s > ASR_MAX_AUDIO_SECONDS, 0.77 MB
    (root / "empty.wav").write_bytes(b"")
    (root / "notes.wav").write_text("plain text, not audio\n" * 50)
    (root / "cut.flac").write_bytes(jfk.read_bytes()[:4000])
    cases = [
        (str(outside / "secret.wav"), {}, "PathNotAllowedError"),
        (str(root / "link_out.wav"), {}, "PathNotAllowedError"),  # a link inside pointing out
        (str(root / "sub" / ".." / ".." / outside.name / "secret.wav"), {}, "PathNotAllowedError"),
        (str(root / "missing.wav"), {}, "AudioNotFoundError"),
        (str(root / "sub"), {}, "NotAFileError"),
        (str(root / "empty.wav"), {}, "EmptyAudioError"),
        (str(root / "notes.wav"), {}, "AudioDecodeError"),
        (str(root / "cut.flac"), {}, "AudioDecodeError"),
        (str(big), {}, "FileTooLargeError"),
        (str(long_file), {}, "AudioTooLongError"),
        (str(small), {"no_such_option": 1}, "InvalidOptionsError"),
        (str(small), {"temperature": "warm"}, "InvalidOptionsError"),
        (str(small), {"word_timestamps": "yes"}, "InvalidOptionsError"),
        (12345, {}, "InvalidPathError"),
        (["a", "list"], {}, "InvalidPathError"),
        (None, {}, "InvalidPathError"),
        ("", {}, "InvalidPathError"),
    ]
    jobs = [send_raw(client, path, **options) for path, options, _ in cases]
    good = client.submit(small)
    for job, (path, _, expected) in zip(jobs, cases, strict=True):
        with pytest.raises(TranscriptionFailed) as caught:
            job.result(timeout=60)
        assert caught.value.error_type == expected, (path, caught.value)
    assert "country" in good.result(timeout=60)["text"]
    log = worker_log(stack)
    assert not any(f"{job.id}] retry" in log for job in jobs), "bad input is never retried"


def _jfk_pcm() -> np.ndarray:
    from faster_whisper.audio import decode_audio

    return decode_audio(str(audio_file("jfk.flac")))


def test_zero_length_and_silent_recordings_succeed_with_no_segments(confined):
    _, client, root, _ = confined
    zero = write_wav(root / "zero.wav", np.zeros(0, dtype=np.float32))
    silence = write_wav(root / "silence.wav", np.zeros(5 * 16000, dtype=np.float32))
    for path, duration in ((zero, 0.0), (silence, 5.0)):
        result = client.transcribe(path, timeout=60)
        assert result["segments"] == [] and result["text"] == "", (path, result["text"])
        assert result["duration"] == pytest.approx(duration, abs=0.05)


def test_unset_audio_roots_logs_a_warning_at_start(stack):
    # The session worker runs without ASR_AUDIO_ROOTS.
    assert "ASR_AUDIO_ROOTS is not set" in worker_log(stack)


def test_configured_audio_roots_give_no_warning(confined):
    stack, *_ = confined
    assert "ASR_AUDIO_ROOTS is not set" not in worker_log(stack)


def test_a_missing_audio_root_stops_the_worker_at_start(tmp_path, stack):
    from tests.helpers import start_worker

    done = start_worker(stack.url, ASR_AUDIO_ROOTS=str(tmp_path / "nope"))
    assert done.returncode != 0
    assert "ASR_AUDIO_ROOTS" in done.stdout + done.stderr


def test_an_unwritable_cache_dir_stops_the_worker_at_start(tmp_path, stack):
    from tests.helpers import start_worker

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    done = start_worker(stack.url, ASR_CACHE_DIR=str(blocker / "cache"))
    assert done.returncode != 0
    assert "ASR_CACHE_DIR" in done.stdout + done.stderr
    assert os.path.isfile(blocker)
