"""The HTTP API end to end: a real uvicorn process, a real worker and Redis, the official OpenAI SDK.

One worker stack and one API server serve the whole module (its own worker: the
cancel test replaces a child). Uploads are real speech (jfk.flac, 11 s); the
transcripts are checked against what the producer library gets for the same file.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import srt
import webvtt

from evaluation.audio import SEQUENTIAL, concatenate, write_wav
from producer import Client
from producer.api.local import ApiServer, server_env
from producer.local import LocalStack
from tests.helpers import ROOT, audio_file, normalise, wait_until, worker_stack

pytestmark = pytest.mark.integration

KEY = "test-key-2"  # the second of two keys: any configured key is accepted
# Room for the cancel test's 6-minute WAV (11.5 MB).
MAX_UPLOAD = 16 * 1024 * 1024


@pytest.fixture(scope="module")
def api_stack(tmp_path_factory: pytest.TempPathFactory, redis_server_binary: str) -> Iterator[LocalStack]:
    with worker_stack(tmp_path_factory, "api-worker") as running:
        yield running


@pytest.fixture(scope="module")
def uploads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uploads")


@pytest.fixture(scope="module")
def api(
    api_stack: LocalStack, uploads: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    env = server_env(uploads, ASR_API_MAX_UPLOAD_BYTES=str(MAX_UPLOAD))
    with ApiServer(api_stack.url, tmp_path_factory.mktemp("api") / "api.log", **env) as server:
        yield server


@pytest.fixture(scope="module")
def sdk(api: ApiServer) -> openai.OpenAI:
    # No retries: a 5xx must fail the test, not be tried again.
    return openai.OpenAI(base_url=f"{api.url}/v1", api_key=KEY, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def http(api: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def expected(api_stack: LocalStack) -> dict[str, object]:
    """What the producer library gets for jfk.flac, with word timings: the API must answer the same."""
    with Client(api_stack.url, api_stack.url) as client:
        return client.transcribe(audio_file("jfk.flac"), timeout=120, word_timestamps=True)


def _jfk() -> Path:
    return audio_file("jfk.flac")


def _no_uploads_left(uploads: Path, timeout: float = 10.0) -> None:
    wait_until(lambda: not list(uploads.iterdir()), timeout, f"uploads left behind in {uploads}")


def test_json_and_text_match_the_producer_library(sdk: openai.OpenAI, expected: dict, uploads: Path):
    with _jfk().open("rb") as f:
        answer = sdk.audio.transcriptions.create(file=f, model="whisper-1")
    assert isinstance(answer, openai.types.audio.Transcription)
    assert answer.text == expected["text"]
    assert answer.usage is not None and answer.usage.seconds == 11
    with _jfk().open("rb") as f:
        text = sdk.audio.transcriptions.create(file=f, model="whisper-1", response_format="text")
    assert text == f"{expected['text']}\n"
    _no_uploads_left(uploads)


def test_srt_and_vtt_parse_into_the_segments(sdk: openai.OpenAI, expected: dict):
    with _jfk().open("rb") as f:
        body = sdk.audio.transcriptions.create(file=f, model="tiny.en", response_format="srt")
    cues = list(srt.parse(body))
    with _jfk().open("rb") as f:
        vtt = sdk.audio.transcriptions.create(file=f, model="tiny.en", response_format="vtt")
    captions = webvtt.from_string(vtt)
    texts = [" ".join(c.content.split()) for c in cues]
    assert texts == [" ".join(c.text.split()) for c in captions]
    assert " ".join(texts) == " ".join(str(expected["text"]).split())
    assert cues[0].start.total_seconds() == 0.0 and cues[-1].end.total_seconds() <= 11.0


def test_verbose_json_has_segments_and_words(sdk: openai.OpenAI, expected: dict):
    with _jfk().open("rb") as f:
        answer = sdk.audio.transcriptions.create(
            file=f,
            model="whisper-1",
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
        )
    assert isinstance(answer, openai.types.audio.TranscriptionVerbose)
    assert answer.text == expected["text"] and answer.language == "en" and answer.duration == 11.0
    segments = expected["segments"]
    assert [s.id for s in answer.segments or []] == list(range(len(segments)))
    assert [s.text for s in answer.segments or []] == [s["text"] for s in segments]
    words = [w["word"].strip() for s in segments for w in s["words"]]
    assert [w.word for w in answer.words or []] == words
    starts = [w.start for w in answer.words or []]
    assert starts == sorted(starts) and all(w.end >= w.start for w in answer.words or [])
    with _jfk().open("rb") as f:
        words_only = sdk.audio.transcriptions.create(
            file=f, model="whisper-1", response_format="verbose_json", timestamp_granularities=["word"]
        )
    assert words_only.segments is None and len(words_only.words or []) == len(words)


def test_streaming_events_arrive_in_order(sdk: openai.OpenAI, expected: dict):
    with _jfk().open("rb") as f:
        events = list(sdk.audio.transcriptions.create(file=f, model="whisper-1", stream=True))
    kinds = [e.type for e in events]
    assert kinds == ["transcript.text.delta"] * (len(kinds) - 1) + ["transcript.text.done"]
    assert len(kinds) >= 3  # jfk.flac is two segments
    assert "".join(e.delta for e in events[:-1]) == expected["text"] == events[-1].text


def test_streamed_text_comes_while_the_job_decodes(api: ApiServer, expected: dict):
    """A delta is sent before the job's last progress: it is fed by the worker's progress, not the end."""
    lines = []
    with (
        _jfk().open("rb") as f,
        httpx.stream(
            "POST",
            f"{api.url}/v1/audio/transcriptions",
            headers={"Authorization": f"Bearer {KEY}"},
            files={"file": ("jfk.flac", f, "audio/flac")},
            data={"model": "whisper-1", "stream": "true"},
            timeout=120,
        ) as answer,
    ):
        assert answer.status_code == 200
        lines = [line for line in answer.iter_lines() if line]
    first_delta = next(i for i, line in enumerate(lines) if "transcript.text.delta" in line)
    progress = [i for i, line in enumerate(lines) if line.startswith(": progress")]
    assert progress and first_delta < progress[-1], lines
    deltas = [json.loads(line.removeprefix("data: "))["delta"] for line in lines if "text.delta" in line]
    assert "".join(deltas) == expected["text"]


def test_wrong_or_missing_key_is_refused(api: ApiServer):
    for key in ("wrong-key", "test-key-1x", "test-key"):
        client = openai.OpenAI(base_url=f"{api.url}/v1", api_key=key, max_retries=0)
        with pytest.raises(openai.AuthenticationError) as raised, _jfk().open("rb") as f:
            client.audio.transcriptions.create(file=f, model="whisper-1")
        assert raised.value.code == "invalid_api_key"
    answer = httpx.get(f"{api.url}/v1/models")
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "invalid_api_key"
    assert "wrong-key" not in api.log() and KEY not in api.log()


# The SDK marks audio.translations deprecated (OpenAI's own models); the endpoint is still ours.
@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
def test_translation_is_refused_on_an_english_only_model(sdk: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as raised, _jfk().open("rb") as f:
        sdk.audio.translations.create(file=f, model="whisper-1")
    assert raised.value.code == "model_not_multilingual"
    assert "tiny.en" in raised.value.message and "English-only" in raised.value.message


def test_models_lists_what_the_workers_serve(sdk: openai.OpenAI):
    models = sdk.models.list().data
    assert [m.id for m in models] == ["tiny.en"]
    assert sdk.models.retrieve("tiny.en").id == "tiny.en"
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("large-v3")


def test_bad_requests_answer_in_openai_shape(sdk: openai.OpenAI, http: httpx.Client, uploads: Path, tmp_path):
    not_audio = tmp_path / "notes.txt"
    not_audio.write_text("hello")
    with pytest.raises(openai.APIStatusError) as raised, not_audio.open("rb") as f:
        sdk.audio.transcriptions.create(file=f, model="whisper-1")
    assert raised.value.status_code == 415 and raised.value.code == "unsupported_media_type"

    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF" + bytes(range(256)) * 64)
    with pytest.raises(openai.BadRequestError) as raised, corrupt.open("rb") as f:
        sdk.audio.transcriptions.create(file=f, model="whisper-1")
    assert raised.value.code == "invalid_audio" and "AudioDecodeError" in raised.value.message

    with pytest.raises(openai.BadRequestError) as raised, _jfk().open("rb") as f:
        sdk.audio.transcriptions.create(file=f, model="whisper-1", response_format="xml")  # type: ignore[arg-type]
    assert raised.value.param == "response_format"

    # Content-Length says it is too big: refused before a byte is read.
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * (MAX_UPLOAD + 2 * 1024 * 1024))
    answer = http.post("/v1/audio/transcriptions", files={"file": ("big.wav", big.read_bytes())})
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "file_too_large"
    _no_uploads_left(uploads)


def test_413_while_streaming_without_content_length(http: httpx.Client, uploads: Path):
    # A chunked body gives no Content-Length to check first: the limit stops it while it streams.
    boundary = "b0undary"

    def body() -> Iterator[bytes]:
        yield (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
               "Content-Type: audio/wav\r\n\r\n").encode()  # fmt: skip
        for _ in range(MAX_UPLOAD // 65536 + 2):
            yield b"\0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    answer = http.post(
        "/v1/audio/transcriptions",
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert answer.status_code == 413
    _no_uploads_left(uploads)


def _events(http: httpx.Client, job_id: str) -> Iterator[tuple[str | None, dict]]:
    """The server-sent events of a job, as (event, data), until the server ends the stream."""
    with http.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
        kind = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                yield kind, json.loads(line.removeprefix("data: "))


def test_jobs_api_submit_follow_fetch(http: httpx.Client):
    submitted = http.post("/v1/jobs", json={"audio": str(_jfk()), "options": {"word_timestamps": True}})
    assert submitted.status_code == 202
    job_id = submitted.json()["id"]
    assert submitted.headers["location"] == f"/v1/jobs/{job_id}"

    events = list(_events(http, job_id))  # a short job: it may have ended before the stream opened
    assert events[-2] == ("state", {"id": job_id, "state": "SUCCESS", "progress": None})
    assert events[-1][0] == "done" and events[-1][1]["state"] == "SUCCESS"

    assert http.get(f"/v1/jobs/{job_id}").json()["state"] == "SUCCESS"
    full = http.get(f"/v1/jobs/{job_id}/transcript").json()
    # Compared normalised: the comma after "And so" comes and goes with the CPU's numerics.
    assert normalise(full["text"]).startswith("and so my fellow americans") and "words" in full["segments"][0]
    for fmt, head in (
        ("txt", "And so"),
        ("srt", "1\n00:00:00,000"),
        ("vtt", "WEBVTT"),
        ("tsv", "start\tend"),
    ):
        answer = http.get(f"/v1/jobs/{job_id}/transcript", params={"format": fmt})
        assert answer.status_code == 200 and answer.text.startswith(head), (fmt, answer.text[:40])
    assert http.get(f"/v1/jobs/{job_id}/transcript", params={"format": "doc"}).status_code == 400
    assert http.delete(f"/v1/jobs/{job_id}").status_code == 409  # already ended


def test_jobs_api_refuses_bad_submissions(http: httpx.Client):
    unknown_option = http.post("/v1/jobs", json={"audio": str(_jfk()), "options": {"colour": "blue"}})
    assert unknown_option.status_code == 400 and unknown_option.json()["error"]["param"] == "options.colour"
    relative = http.post("/v1/jobs", json={"audio": "jfk.flac"})
    assert relative.status_code == 400 and relative.json()["error"]["param"] == "audio"
    missing = http.get("/v1/jobs/no-such-job")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "job_not_found"


def test_jobs_api_cancel_a_running_upload(http: httpx.Client, uploads: Path, tmp_path: Path):
    # 6 minutes of speech (11.5 MB, under the limit): the job must still be running after the
    # round trips below. With 96 s a fast CI machine finished it before the DELETE arrived.
    long_file = concatenate(_jfk(), 30, tmp_path / "jfk_x30.wav")
    submitted = http.post(
        "/v1/jobs",
        files={"file": ("long.wav", long_file.read_bytes(), "audio/wav")},
        data={"options": json.dumps(SEQUENTIAL)},
    )
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    events = _events(http, job_id)
    percents = []
    for kind, data in events:  # follow the job until it reports progress past its start
        assert kind == "state" and data["state"] not in ("SUCCESS", "FAILURE"), data
        if data["progress"]:
            percents.append(data["progress"]["percent"])
            if percents[-1] > 0:
                break
    running = http.get(f"/v1/jobs/{job_id}/transcript")
    assert running.status_code == 409 and running.json()["error"]["code"] == "job_not_done"
    assert job_id in [j["id"] for j in http.get("/v1/jobs").json()["data"]]
    cancelled = http.delete(f"/v1/jobs/{job_id}")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "REVOKED"
    rest = list(events)  # the same stream goes on to the end
    assert rest[-1][0] == "done" and rest[-1][1]["state"] == "REVOKED"
    percents += [data["progress"]["percent"] for kind, data in rest if data.get("progress")]
    assert percents == sorted(percents) and percents[-1] < 100
    gone = http.get(f"/v1/jobs/{job_id}/transcript")
    assert gone.status_code == 409 and gone.json()["error"]["code"] == "job_cancelled"
    _no_uploads_left(uploads)
    # The API waited for this upload's job to end: it is counted like a synchronous one.
    assert re.search(
        r'asr_api_jobs_ended_total\{error_type="[A-Za-z]*",state="REVOKED"\} [1-9]', http.get("/metrics").text
    )


def test_health_readiness_and_metrics(api: ApiServer, http: httpx.Client):
    http.get("/v1/models")
    corrupt = http.post("/v1/audio/transcriptions", files={"file": ("x.wav", b"RIFF" + b"x" * 4096)})
    assert corrupt.status_code == 400
    assert httpx.get(f"{api.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{api.url}/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["workers_on_default_queue"] is True
    assert httpx.get(f"{api.url}/metrics").status_code == 401
    text = http.get("/metrics").text
    assert 'asr_api_requests_total{method="GET",route="/v1/models",status="200"}' in text
    assert 'asr_api_requests_total{method="POST",route="/v1/audio/transcriptions",status="400"}' in text
    assert 'asr_api_jobs_ended_total{error_type="AudioDecodeError",state="FAILURE"}' in text
    assert 'asr_queue_depth{queue="asr"} 0.0' in text and "asr_workers_alive 1.0" in text
    # Every series the Grafana dashboard queries is served.
    dashboard = (ROOT / "docs" / "grafana-api.json").read_text()
    queried = set(re.findall(r"\b(asr_[a-z_]+)", dashboard))
    served = set(re.findall(r"^(asr_[a-z_]+)[{ ]", text, re.MULTILINE))
    assert queried and queried <= served, queried - served
    assert httpx.get(f"{api.url}/openapi.json").json()["paths"].keys() >= {
        "/v1/audio/transcriptions", "/v1/audio/translations", "/v1/models", "/v1/jobs", "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/transcript", "/v1/jobs/{job_id}/events", "/healthz", "/readyz", "/metrics",
    }  # fmt: skip


def test_no_key_configured_refuses_to_start(api_stack: LocalStack, uploads: Path):
    env = {"REDIS_URL": api_stack.url, "ASR_UPLOAD_URL": str(uploads), "PATH": "/usr/bin:/bin"}
    ran = subprocess.run(
        [sys.executable, "-m", "uvicorn", "producer.api:app", "--port", "0"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ran.returncode != 0
    assert "no API key configured" in ran.stderr and "ASR_API_AUTH=none" in ran.stderr


def test_fifty_concurrent_uploads_all_succeed(api: ApiServer, api_stack: LocalStack, uploads: Path, tmp_path):
    """Load: 50 uploads at once (the first 2 s of jfk.flac), each answered with the clip's text."""
    from faster_whisper.audio import decode_audio

    clip = write_wav(tmp_path / "clip.wav", decode_audio(str(_jfk()), sampling_rate=16000)[: 16000 * 2])
    with Client(api_stack.url, api_stack.url) as client:
        text = client.transcribe(clip, timeout=60)["text"]
    assert text.replace(",", "").startswith("And so")

    async def one(sdk: openai.AsyncOpenAI) -> str:
        with clip.open("rb") as f:
            answer = await sdk.audio.transcriptions.create(file=f, model="whisper-1", response_format="text")
        return str(answer)

    async def all_of_them() -> list[str]:
        sdk = openai.AsyncOpenAI(base_url=f"{api.url}/v1", api_key=KEY, max_retries=0, timeout=300)
        async with sdk:
            return await asyncio.gather(*(one(sdk) for _ in range(50)))

    answers = asyncio.run(all_of_them())
    assert answers == [f"{text}\n"] * 50
    _no_uploads_left(uploads)


def test_a_restarted_api_removes_the_uploads_it_was_waiting_on(
    api_stack: LocalStack, uploads: Path, tmp_path
):
    """Uploads whose jobs ended (or are unknown) while no API ran are removed when one starts."""
    import redis

    from producer.api.service import UPLOADS_KEY

    with Client(api_stack.url, api_stack.url) as client:
        ended = client.submit(_jfk())
        ended.result(timeout=120)
    left = {ended.id: uploads / "ended.wav", "no-such-job": uploads / "unknown.wav"}
    server = redis.Redis.from_url(api_stack.url)
    for job_id, path in left.items():
        path.write_bytes(b"RIFF")
        server.hset(UPLOADS_KEY, job_id, str(path))
    with ApiServer(api_stack.url, tmp_path / "api.log", **server_env(uploads)):
        _no_uploads_left(uploads)
        wait_until(lambda: not server.hlen(UPLOADS_KEY), 10, "the uploads' records were not removed")


def test_a_queued_job_shows_its_place_and_is_cancelled_before_it_runs(
    api_stack: LocalStack, uploads: Path, tmp_path: Path
):
    env = server_env(uploads, ASR_QUEUE="api-no-worker")  # a queue nobody consumes
    with (
        ApiServer(api_stack.url, tmp_path / "api.log", **env) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as http,
    ):
        ids = [http.post("/v1/jobs", json={"audio": str(_jfk())}).json()["id"] for _ in range(2)]
        views = [http.get(f"/v1/jobs/{job_id}").json() for job_id in ids]
        assert [(v["state"], v["queue_position"]) for v in views] == [("PENDING", 1), ("PENDING", 2)]
        assert [j["id"] for j in http.get("/v1/jobs").json()["data"]] == ids
        for job_id in ids:
            assert http.delete(f"/v1/jobs/{job_id}").json()["state"] == "REVOKED"
        assert http.get(f"/v1/jobs/{ids[0]}/transcript").json()["error"]["code"] == "job_cancelled"
