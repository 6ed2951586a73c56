"""The HTTP API's uploads: to an S3 prefix (a real moto server), audio by URL, and a 500 MB upload.

One worker stack reads the moto server with its AWS environment only (as in
tests/integration/test_sources.py); the API streams uploads to
``s3://uploads/api/`` and removes each object when its job ends.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from evaluation.audio import write_wav
from evaluation.stores import AWS_ENV, moto_server, s3_client
from evaluation.uploads import measure_upload
from producer.api.local import ApiServer, server_env
from producer.local import LocalStack
from tests.helpers import audio_file, normalise, wait_until, worker_stack

pytestmark = pytest.mark.integration

KEY = "test-key-1"
UPLOAD_PREFIX = "s3://uploads/api/"
SPEECH = "and so my fellow americans ask not what your country can do for you"


class Store:
    """The moto server, the worker that reads it and the API that uploads to it."""

    def __init__(self, endpoint: str, stack: LocalStack, api: ApiServer) -> None:
        self.endpoint, self.stack, self.api = endpoint, stack, api
        self.s3 = s3_client(endpoint)
        self.http = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120)

    def uploads(self) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket="uploads", Prefix="api/")
        return [item["Key"] for item in listed.get("Contents", [])]

    def no_uploads_left(self) -> None:
        wait_until(lambda: not self.uploads(), 20, "uploads left in s3://uploads/api/")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, redis_server_binary: str) -> Iterator[Store]:
    root = tmp_path_factory.mktemp("api-store")
    with moto_server(root) as endpoint:
        s3 = s3_client(endpoint)
        for bucket in ("audio", "uploads"):
            s3.create_bucket(Bucket=bucket)
        s3.upload_file(str(audio_file("jfk.flac")), "audio", "calls/jfk.flac")
        aws = {**AWS_ENV, "AWS_ENDPOINT_URL": endpoint}
        worker_env = {
            **aws,
            "ASR_AUDIO_URLS": f"s3://audio/,{UPLOAD_PREFIX}",
            "ASR_SPOOL_DIR": str(root / "spool"),
        }
        with (
            worker_stack(tmp_path_factory, "api-store-worker", **worker_env) as stack,
            ApiServer(stack.url, root / "api.log", **server_env(UPLOAD_PREFIX, keys=KEY), **aws) as api,
        ):
            running = Store(endpoint, stack, api)
            yield running
            running.http.close()


def _job(store: Store, submitted: httpx.Response) -> dict[str, Any]:
    """The transcript of a submitted job, once it succeeded."""
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    with store.http.stream("GET", f"/v1/jobs/{job_id}/events") as events:
        for _ in events.iter_lines():  # the stream ends when the job does
            pass
    answer = store.http.get(f"/v1/jobs/{job_id}/transcript")
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_an_openai_transcription_uploads_to_s3_and_removes_the_object(store: Store):
    sdk = openai.OpenAI(base_url=f"{store.api.url}/v1", api_key=KEY, max_retries=0, timeout=120)
    with audio_file("jfk.flac").open("rb") as f:
        answer = sdk.audio.transcriptions.create(file=f, model="whisper-1")
    assert normalise(answer.text).startswith(SPEECH)
    store.no_uploads_left()
    # The worker read the upload from the store: the object the API wrote, by its s3:// URL.
    assert "s3://uploads/api/" in store.stack.log_path.read_text(errors="replace")


def _padded_wav(folder: Path, padding: int) -> Path:
    """jfk.flac as WAV behind a ``padding``-byte JUNK chunk (skipped by decoders): big, yet 11 s of speech."""
    from faster_whisper.audio import decode_audio

    plain = write_wav(folder / "plain.wav", decode_audio(str(audio_file("jfk.flac")), sampling_rate=16000))
    data = plain.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    junk = b"JUNK" + struct.pack("<I", padding) + bytes(padding)
    padded = folder / "padded.wav"
    padded.write_bytes(
        b"RIFF" + struct.pack("<I", 4 + len(junk) + len(data) - 12) + b"WAVE" + junk + data[12:]
    )
    return padded


def test_a_jobs_upload_larger_than_one_part_is_sent_in_parts(store: Store, tmp_path: Path):
    """A 12 MiB file goes to S3 as a multipart upload (8 MiB parts): the worker reads it whole."""
    padded = _padded_wav(tmp_path, 12 << 20)
    with padded.open("rb") as f:
        submitted = store.http.post("/v1/jobs", files={"file": ("padded.wav", f, "audio/wav")})
    assert normalise(_job(store, submitted)["text"]).startswith(SPEECH)
    store.no_uploads_left()


def test_a_job_names_its_audio_by_s3_url(store: Store):
    submitted = store.http.post("/v1/jobs", json={"audio": "s3://audio/calls/jfk.flac"})
    result = _job(store, submitted)
    assert result["audio_path"] == "s3://audio/calls/jfk.flac"
    assert normalise(result["text"]).startswith(SPEECH)
    # A URL the workers do not allow is theirs to refuse: the job fails with the path error.
    refused = store.http.post("/v1/jobs", json={"audio": "s3://elsewhere/jfk.flac"})
    assert refused.status_code == 202
    job_id = refused.json()["id"]
    wait_until(lambda: store.http.get(f"/v1/jobs/{job_id}").json()["state"] == "FAILURE", 60, "the refusal")
    transcript = store.http.get(f"/v1/jobs/{job_id}/transcript").json()
    assert transcript["error"]["code"] == "invalid_audio_path", transcript


def test_memory_stays_bounded_while_500_mb_stream_in(store: Store, tmp_path: Path):
    """A 500 MiB upload, generated as it is sent: the API's peak RSS grows by far less than the file."""
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    megabytes = 500
    env = server_env(
        uploads,
        keys=KEY,
        ASR_QUEUE="api-memory-no-worker",
        ASR_API_MAX_UPLOAD_BYTES=str((megabytes + 1) << 20),
    )
    with ApiServer(store.stack.url, tmp_path / "api.log", **env) as api:
        assert api.pid is not None
        measured = measure_upload(api.url, KEY, api.pid, megabytes)
        (written,) = list(uploads.iterdir())
        assert written.stat().st_size == megabytes << 20
        assert measured.growth < 100, measured
        cancelled = httpx.delete(
            f"{api.url}/v1/jobs/{measured.job_id}", headers={"Authorization": f"Bearer {KEY}"}
        )
        assert cancelled.json()["state"] == "REVOKED"
        wait_until(lambda: not list(uploads.iterdir()), 20, "the 500 MiB upload left behind")
