"""Audio from s3:// and http(s) URLs, transcripts out to object storage, through a real worker.

A real moto S3 server process and a real HTTP server (evaluation/stores.py)
serve the audio; the worker reads them with its AWS environment only.
"""

from __future__ import annotations

import json
import shutil
import ssl
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
import srt
import trustme
from celery.result import AsyncResult

from evaluation.stores import AWS_ENV, http_server, moto_server, s3_client
from evaluation.workloads import referenced_mix
from producer import TranscriptionFailed
from producer.local import LocalStack
from tests.helpers import (
    audio_file,
    job_failure,
    run_module,
    wait_until,
    word_error_rate,
    worker_log,
    worker_stack,
)

pytestmark = pytest.mark.integration

#: The worker refuses bigger downloads (the long mix is about 4 MB).
MAX_BYTES = 8_000_000
#: Downloads the worker tries again itself before the task is retried by Celery.
FETCH_RETRIES = 1


class Stores:
    """The servers and the worker of this module."""

    def __init__(
        self, root: Path, endpoint: str, web: Any, stack: LocalStack, secure: Any, untrusted: Any
    ) -> None:
        self.root, self.endpoint, self.web, self.stack = root, endpoint, web, stack
        # https servers: one whose CA the worker trusts (SSL_CERT_FILE), one whose CA it does not.
        self.secure, self.untrusted = secure, untrusted
        self.s3 = s3_client(endpoint)
        self.spool = root / "spool"

    def spooled(self) -> list[str]:
        return sorted(p.name for p in self.spool.iterdir()) if self.spool.exists() else []


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory, redis_server_binary: str) -> Iterator[Stores]:
    root = tmp_path_factory.mktemp("stores")
    (root / "web").mkdir()
    shutil.copy(audio_file("jfk.flac"), root / "web" / "jfk.flac")
    trusted_ca, other_ca = trustme.CA(), trustme.CA()
    trusted_ca.cert_pem.write_to_path(str(root / "ca.pem"))
    with (
        moto_server(root) as endpoint,
        http_server(root / "web") as web,
        http_server(root / "web", _tls(trusted_ca)) as secure,
        http_server(root / "web", _tls(other_ca)) as untrusted,
    ):
        s3 = s3_client(endpoint)
        for bucket in ("audio", "transcripts"):
            s3.create_bucket(Bucket=bucket)
        s3.upload_file(str(audio_file("jfk.flac")), "audio", "calls/jfk.flac")
        env = {
            **AWS_ENV,
            "AWS_ENDPOINT_URL": endpoint,
            # Any public http(s) URL, the audio bucket, and this one local server by its exact origin.
            "ASR_AUDIO_URLS": f"s3://audio/,http://,https://,{web.url}/,{secure.url}/,{untrusted.url}/",
            "SSL_CERT_FILE": str(root / "ca.pem"),
            "ASR_SPOOL_DIR": str(root / "spool"),
            "ASR_MAX_FILE_BYTES": str(MAX_BYTES),
            "ASR_FETCH_READ_TIMEOUT": "2",
            "ASR_FETCH_RETRIES": str(FETCH_RETRIES),
            "ASR_OUTPUT_URL": "s3://transcripts/all/",
            "ASR_OUTPUT_URLS": str(root / "out"),
        }
        with worker_stack(tmp_path_factory, "sources-worker", **env) as stack:
            yield Stores(root, endpoint, web, stack, secure, untrusted)


def _tls(ca: trustme.CA) -> ssl.SSLContext:
    """A server-side TLS context with a certificate for 127.0.0.1 issued by ``ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.fixture(scope="module")
def stack(stores: Stores) -> LocalStack:
    """This module's worker: the conftest's ``client`` and ``from_disk`` use it."""
    return stores.stack


@contextmanager
def task_events(app: Any) -> Iterator[list[dict[str, Any]]]:
    """The events the workers send while the block runs, as Flower receives them."""
    events: list[dict[str, Any]] = []
    with app.connection_for_read() as connection:
        receiver = app.events.Receiver(connection, handlers={"*": events.append})
        thread = threading.Thread(target=receiver.capture, kwargs={"wakeup": False}, daemon=True)
        thread.start()
        # Redis delivers events to subscribers only: listening once a heartbeat came through.
        wait_until(lambda: events, 30, "no event from the worker (heartbeats come every 2 s)")
        try:
            yield events
        finally:
            receiver.should_stop = True
            thread.join(timeout=10)


def _events_of(events: list[dict[str, Any]], task_id: str, kind: str | None = None) -> list[dict[str, Any]]:
    """The events of job ``task_id`` (of one ``kind``, or all) received so far."""
    return [e for e in list(events) if e.get("uuid") == task_id and kind in (None, e["type"])]


def _redis_contents(url: str) -> str:
    """Every key of a Redis and every value it holds, as one text."""
    client = redis.Redis.from_url(url)
    read = {
        b"string": client.get,
        b"list": lambda key: client.lrange(key, 0, -1),
        b"hash": client.hgetall,
        b"set": client.smembers,
        b"zset": lambda key: client.zrange(key, 0, -1),
    }
    return "\n".join(f"{key!r} {read.get(client.type(key), repr)(key)!r}" for key in client.scan_iter())


def test_s3_audio_in_and_transcripts_out_to_s3(client, stores, from_disk):
    result = client.transcribe("s3://audio/calls/jfk.flac", output_formats=["json", "srt"], timeout=120)

    assert result["text"] == from_disk["text"], "as accurate as the same file from disk"
    assert result["audio_path"] == "s3://audio/calls/jfk.flac"
    assert result["outputs"] == {
        "json": "s3://transcripts/all/jfk.json",
        "srt": "s3://transcripts/all/jfk.srt",
    }
    stored = json.loads(stores.s3.get_object(Bucket="transcripts", Key="all/jfk.json")["Body"].read())
    assert stored["text"] == result["text"] and stored["segments"] == result["segments"]
    cues = list(
        srt.parse(stores.s3.get_object(Bucket="transcripts", Key="all/jfk.srt")["Body"].read().decode())
    )
    # Subtitle lines wrap at 42 characters: the cues hold the segments' words, in order.
    assert " ".join(c.content.replace("\n", " ") for c in cues) == " ".join(
        s["text"].strip() for s in result["segments"]
    )
    assert stores.spooled() == [], "the download is removed when the job ends"


def test_presigned_style_url_keeps_its_secret_out_of_logs_and_results(client, stores, from_disk):
    secret = f"sig-{uuid.uuid4().hex}"
    url = f"{stores.web.url}/audio/jfk.flac?X-Amz-Signature={secret}&X-Amz-Expires=300"
    out = stores.root / "out" / "signed"
    with task_events(client.app) as events:
        job = client.submit(url, output_url=str(out), output_formats=["txt", "vtt"])
        clip = client.submit(url, batch=True)  # the clip-batching path reads URLs too
        result, clip_result = job.result(timeout=120), clip.result(timeout=120)
        # celery-batches sends no task-received for a clip job; asr.transcribe's carries its args.
        wait_until(lambda: _events_of(events, job.id, "task-received"), 30, "the task-received event")
        received = _events_of(events, job.id) + _events_of(events, clip.id)

    assert result["text"] == from_disk["text"] and clip_result["text"] == from_disk["text"]
    assert any(secret in line for line in stores.web.requests), "the worker sent the signature"
    assert result["audio_path"] == f"{stores.web.url}/audio/jfk.flac?***"
    assert result["outputs"] == {"txt": str(out / "jfk.txt"), "vtt": str(out / "jfk.vtt")}
    assert (out / "jfk.txt").read_text().split() == result["text"].split()
    for stored in (result, clip_result):
        assert secret not in json.dumps(stored)
    assert secret not in worker_log(stores.stack)
    assert secret not in (out / "jfk.vtt").read_text()
    # What Flower sees (the events' args) and what the producer shows as the job's path.
    assert all(secret not in json.dumps(event) for event in received)
    assert any(f"{stores.web.url}/audio/jfk.flac?***" in str(e.get("args")) for e in received)
    assert client.status(job.id).path == client.status(clip.id).path == result["audio_path"]
    # Nothing in Redis keeps it once the jobs are acknowledged: not their stored states (with
    # their args), not their messages.
    wait_until(lambda: secret not in _redis_contents(stores.stack.url), 30, "the signature left in Redis")


def test_https_audio_is_read_with_the_ca_ssl_cert_file_names_and_as_accurate_as_from_disk(
    client, stores, from_disk
):
    result = client.transcribe(f"{stores.secure.url}/audio/jfk.flac", timeout=120)
    assert result["text"] == from_disk["text"]
    assert result["segments"] == from_disk["segments"]
    # A server whose CA the worker does not trust: refused at once, typed, not retried.
    job = client.submit(f"{stores.untrusted.url}/audio/jfk.flac?token=s3cr3t")
    failed = job_failure(job)
    assert failed.error_type == "AudioUnreadableError", failed
    assert "TLS certificate of 127.0.0.1 is not trusted" in failed.message
    assert "s3cr3t" not in failed.message
    assert AsyncResult(job.id, app=client.app).retries == 0, "a certificate is not retried"
    assert stores.untrusted.requests == [], "no request was sent over the untrusted connection"


def test_refused_reads_fail_with_typed_errors_and_the_worker_keeps_serving(client, stores):
    web = stores.web.url
    jobs = {
        "AccessDeniedError": client.submit(f"{web}/forbidden?token=t0p"),
        "AudioNotFoundError": client.submit(f"{web}/missing"),
        "FileTooLargeError": client.submit(f"{web}/huge"),
        "PathNotAllowedError": client.submit("s3://other-bucket/a.wav"),
    }
    s3_missing = client.submit("s3://audio/calls/nope.flac")
    stores.s3.put_object(Bucket="audio", Key="big/zeros.wav", Body=b"\0" * (MAX_BYTES + 1))
    s3_big = client.submit("s3://audio/big/zeros.wav")  # refused by its declared length
    for expected, job in jobs.items():
        failure = job_failure(job)
        assert failure.error_type == expected, (expected, failure.message)
        assert "t0p" not in failure.message
    assert job_failure(s3_missing).error_type == "AudioNotFoundError"
    assert job_failure(s3_big).error_type == "FileTooLargeError"
    # The endless body was cut off at the limit (what more was sent sat in socket buffers), and
    # nothing is left of it.
    assert stores.web.sent < 2 * MAX_BYTES
    assert stores.spooled() == []
    assert client.transcribe("s3://audio/calls/jfk.flac", timeout=120)["text"]


def test_a_5xx_is_retried_with_backoff_and_the_job_succeeds(client, stores, from_disk):
    result = client.transcribe(f"{stores.web.url}/flaky/jfk.flac?attempt=5xx", timeout=120)
    assert result["text"] == from_disk["text"]
    assert stores.web.requests.count("/flaky/jfk.flac?attempt=5xx") == 2
    assert "try 2 of 2" in worker_log(stores.stack)


def test_internal_addresses_are_refused_also_after_a_redirect(client, stores, tmp_path):
    with http_server(tmp_path) as other:  # a local server whose exact origin is not listed
        (tmp_path / "a.flac").write_bytes(b"x" * 100)
        urls = {
            "metadata": "http://169.254.169.254/latest/meta-data/iam/",
            "unlisted local": f"{other.url}/audio/a.flac",
            "redirect to local": f"{stores.web.url}/redirect?to={other.url}/audio/a.flac",
            "redirect to metadata": f"{stores.web.url}/redirect?to=http://169.254.169.254/latest/",
        }
        jobs = {name: client.submit(url) for name, url in urls.items()}
        for name, job in jobs.items():
            failure = job_failure(job)
            assert failure.error_type == "PathNotAllowedError", (name, failure.message)
            assert "internal address" in failure.message
        assert other.requests == [], "nothing was requested from the unlisted server"


def test_a_long_s3_object_is_fetched_once_and_split_across_the_fleet(client, stores, tmp_path):
    path = tmp_path / "mix.wav"
    reference = referenced_mix(130, path, seed=3)
    stores.s3.upload_file(str(path), "audio", "long/mix.wav")
    result = client.transcribe("s3://audio/long/mix.wav", fanout_seconds=60, timeout=300)

    assert len(result["pieces"]) == 3
    assert len({p["worker"]["pid"] for p in result["pieces"]}) == 2, "both children took pieces"
    fetched = [
        line for line in worker_log(stores.stack).splitlines() if "s3://audio/long/mix.wav: fetched" in line
    ]
    assert len(fetched) == 1, "one download for the job and its pieces on this node"
    assert word_error_rate(reference, result["text"]) < 0.15
    assert result["outputs"]["json"] == "s3://transcripts/all/mix.json"
    assert stores.spooled() == [], "the merge removed the node's copy"


def test_cli_upload_puts_local_files_in_s3_and_transcribes_them(stores, monkeypatch, from_disk):
    for name, value in {**AWS_ENV, "AWS_ENDPOINT_URL": stores.endpoint}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ASR_UPLOAD_URL", "s3://audio/uploads/")
    out = stores.root / "out" / "cli"
    done = run_module(
        "producer",
        "--upload",
        "--format",
        "txt",
        "--no-progress",
        "--output-url",
        str(out),
        "--output-format",
        "srt",
        str(audio_file("jfk.flac")),
        redis_url=stores.stack.url,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    words = " ".join(s["text"] for s in from_disk["segments"]).split()
    assert done.stdout.split() == words
    keys = [o["Key"] for o in stores.s3.list_objects_v2(Bucket="audio", Prefix="uploads/")["Contents"]]
    assert len(keys) == 1 and keys[0].endswith("/jfk.flac")
    # --output-url and --output-format: the worker wrote the subtitles, named after the audio.
    assert sorted(p.name for p in out.iterdir()) == ["jfk.srt"]
    cues = list(srt.parse((out / "jfk.srt").read_text()))
    assert " ".join(c.content for c in cues).split() == words


def test_detect_language_reads_urls_like_a_transcription(client, stores):
    # This module's worker has an English-only model: it fetches the object, then refuses to
    # guess (test_language.py detects with a multilingual model, from a path).
    fetched = "s3://audio/calls/jfk.flac: fetched"
    before = worker_log(stores.stack).count(fetched)
    with pytest.raises(TranscriptionFailed) as english_only:
        client.detect_language("s3://audio/calls/jfk.flac", timeout=120)
    assert english_only.value.error_type == "InvalidOptionsError", english_only.value.message
    assert worker_log(stores.stack).count(fetched) == before + 1
    with pytest.raises(TranscriptionFailed) as missing:
        client.detect_language(f"{stores.web.url}/missing?X-Amz-Signature=s3cret", timeout=120)
    assert missing.value.error_type == "AudioNotFoundError" and "s3cret" not in missing.value.message
    assert stores.spooled() == [], "the download is removed when the job ends"


# Last: its retries may still be running when the module's other tests would look at the spool.
def test_a_stalled_download_times_out_and_is_retried(client, stores):
    job = client.submit(f"{stores.web.url}/hang?X-Amz-Signature=hidden")
    result = AsyncResult(job.id, app=client.app)
    wait_until(lambda: result.state == "RETRY", 60, "the stalled download was not retried", interval=0.2)
    assert type(result.info).__name__ == "TransientError"
    assert "timed out" in str(result.info) and "hidden" not in str(result.info)
    # The retried message carries the URL as sent, not the masked one stored with the job.
    signed = "/hang?X-Amz-Signature=hidden"
    wait_until(lambda: stores.web.requests.count(signed) > 1 + FETCH_RETRIES, 60, "no retried fetch")
    assert all("***" not in request for request in stores.web.requests)
    client.cancel(job.id)
