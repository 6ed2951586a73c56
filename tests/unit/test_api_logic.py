"""The HTTP API's pure logic: keys, settings, error mapping, form options, response shapes, the fleet view."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

import worker.pipeline.errors
from producer.api.auth import check_bearer
from producer.api.errors import WORKER_ERRORS, ApiError, worker_error
from producer.api.models import served_models
from producer.api.options import JOB_OPTIONS, audio_request, check_job_options
from producer.api.settings import ApiConfigError, ApiSettings
from producer.api.shapes import compression_ratio, render, request_body, stream_events, verbose
from producer.api.storage import UploadTarget

KEYS = ("first-key", "second-key")


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        ("Bearer first-key", True),
        ("bearer second-key", True),
        ("Bearer  second-key ", True),
        ("Bearer first-ke", False),
        ("Bearer first-key2", False),
        ("Basic first-key", False),
        ("first-key", False),
        ("Bearer ", False),
        (None, False),
    ],
)
def test_bearer_keys(header: str | None, accepted: bool):
    assert check_bearer(header, KEYS) is accepted


def test_no_keys_accept_nothing():
    assert check_bearer("Bearer anything", ()) is False


def test_settings_refuse_to_start_without_a_key(tmp_path: Path):
    with pytest.raises(ApiConfigError, match=r"no API key configured.*ASR_API_AUTH=none"):
        ApiSettings.from_env({"ASR_UPLOAD_URL": str(tmp_path)})
    open_api = ApiSettings.from_env({"ASR_UPLOAD_URL": str(tmp_path), "ASR_API_AUTH": "none"})
    assert open_api.auth_disabled and open_api.api_keys == ()


def test_settings_read_keys_and_limits(tmp_path: Path):
    settings = ApiSettings.from_env(
        {
            "ASR_API_KEYS": " a, b ,,",
            "ASR_UPLOAD_URL": f"file://{tmp_path}",
            "ASR_API_MAX_UPLOAD_BYTES": "1000",
            "ASR_METRICS_PUBLIC": "true",
        }
    )
    assert settings.api_keys == ("a", "b") and settings.uploads == UploadTarget(str(tmp_path))
    assert settings.max_upload_bytes == 1000 and settings.metrics_public and not settings.keep_uploads


def test_uploads_may_go_to_an_object_store(tmp_path: Path):
    settings = ApiSettings.from_env({"ASR_API_KEYS": "k", "ASR_UPLOAD_URL": "s3://bucket/uploads/"})
    assert settings.uploads.is_s3 and settings.uploads.url == "s3://bucket/uploads/"
    assert settings.uploads.open(".flac").location.startswith("s3://bucket/uploads/")
    assert settings.uploads.open(".flac").location.endswith(".flac")
    assert UploadTarget("s3://bucket").open(".wav").location.startswith("s3://bucket/")
    assert not UploadTarget("s3://bucket").open(".wav").location.startswith("s3://bucket//")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ASR_UPLOAD_URL": ""}, "ASR_UPLOAD_URL is not set"),
        ({"ASR_UPLOAD_URL": "uploads"}, "must be an absolute path"),
        ({"ASR_UPLOAD_URL": "s3:///prefix"}, "names no bucket"),
        ({"ASR_UPLOAD_URL": "gs://bucket/prefix"}, "scheme 'gs' is not supported"),
        ({"ASR_UPLOAD_URL": "/no/such/dir"}, "not a writable directory"),
        ({"ASR_API_MAX_UPLOAD_BYTES": "lots"}, "ASR_API_MAX_UPLOAD_BYTES='lots' is not a number"),
        ({"ASR_API_AUTH": "maybe"}, "ASR_API_AUTH='maybe'"),
        ({"ASR_METRICS_PUBLIC": "perhaps"}, "ASR_METRICS_PUBLIC='perhaps'"),
    ],
)
def test_bad_settings_name_the_variable(tmp_path: Path, env: dict[str, str], message: str):
    with pytest.raises(ApiConfigError, match=message.replace("(", r"\(")):
        ApiSettings.from_env({"ASR_API_KEYS": "k", "ASR_UPLOAD_URL": str(tmp_path), **env})


def _worker_error_classes() -> list[type]:
    return [
        c
        for _, c in inspect.getmembers(worker.pipeline.errors, inspect.isclass)
        if issubclass(c, worker.pipeline.errors.ASRError)
    ]


def test_every_input_error_is_a_client_error():
    for cls in _worker_error_classes():
        if issubclass(cls, worker.pipeline.errors.InputError):
            assert 400 <= worker_error(cls.__name__, "x").status < 500, cls


@pytest.mark.parametrize(
    ("error_type", "status", "code"),
    [
        ("AudioDecodeError", 400, "invalid_audio"),
        ("InvalidOptionsError", 400, "invalid_options"),
        ("AudioTooLongError", 422, "audio_too_large"),
        ("ModelUnavailableError", 503, "model_unavailable"),
        ("DiarizationUnavailableError", 400, "diarization_unavailable"),
        ("TranscriptionTimeoutError", 504, "timeout"),
        ("TimeLimitExceeded", 504, "timeout"),
        ("TaskRevokedError", 409, "job_cancelled"),
        ("SomethingNew", 500, "worker_error"),
    ],
)
def test_worker_errors_map_by_type(error_type: str, status: int, code: str):
    error = worker_error(error_type, "why")
    assert (error.status, error.code) == (status, code)
    body = error.body()["error"]
    assert body == {"message": f"{error_type}: why", "type": body["type"], "param": None, "code": code}
    assert body["type"] == ("invalid_request_error" if status < 500 else "server_error")


def test_mapped_names_are_real_worker_errors_or_celerys():
    ours = {cls.__name__ for cls in _worker_error_classes()}
    celery = {"TimeLimitExceeded", "SoftTimeLimitExceeded", "TaskRevokedError"}
    assert set(WORKER_ERRORS) <= ours | celery


def test_audio_request_maps_openai_fields():
    request = audio_request(
        {
            "model": ["whisper-1"],
            "language": ["en"],
            "prompt": ["Kennedy"],
            "temperature": ["0.4"],
            "response_format": ["verbose_json"],
            "timestamp_granularities[]": ["word", "segment", "word"],
        },
        task="transcribe",
    )
    assert request.model == "whisper-1" and request.granularities == ("word", "segment")
    assert request.options == {
        "task": "transcribe",
        "language": "en",
        "initial_prompt": "Kennedy",
        "temperature": 0.4,
        "word_timestamps": True,
    }
    # Temperature 0 is OpenAI's "fall back as needed": the worker's default ladder.
    assert audio_request({"temperature": ["0"]}, task="transcribe").options == {"task": "transcribe"}
    # Translations take no language.
    assert audio_request({"language": ["de"]}, task="translate").options == {"task": "translate"}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"response_format": ["xml"]}, "response_format"),
        ({"temperature": ["2"]}, "temperature"),
        ({"temperature": ["warm"]}, "temperature"),
        ({"timestamp_granularities[]": ["word"]}, "timestamp_granularities"),
        (
            {"response_format": ["verbose_json"], "timestamp_granularities[]": ["char"]},
            "timestamp_granularities",
        ),
        ({"stream": ["true"], "response_format": ["srt"]}, "stream"),
        ({"stream": ["maybe"]}, "stream"),
    ],
)
def test_audio_request_refuses_bad_fields(fields: dict[str, list[str]], param: str):
    with pytest.raises(ApiError) as raised:
        audio_request(fields, task="transcribe")
    assert raised.value.status == 400 and raised.value.param == param


def test_job_options_are_checked_by_name():
    assert check_job_options(None) == {}
    assert check_job_options({"language": "en", "batch": True}) == {"language": "en", "batch": True}
    with pytest.raises(ApiError, match="unknown option"):
        check_job_options({"speed": 2})
    with pytest.raises(ApiError, match="JSON object"):
        check_job_options(["language"])


def test_job_options_match_the_worker():
    from worker.pipeline.options import TranscribeOptions

    assert set(TranscribeOptions.__dataclass_fields__) == JOB_OPTIONS - {"batch"}


RESULT = {
    "text": "Hello there. General Kenobi.",
    "language": "en",
    "duration": 4.2,
    "options": {"task": "transcribe", "temperature": 0.2},
    "segments": [
        {"id": 1, "start": 0.0, "end": 1.5, "text": "Hello there.",
         "avg_logprob": -0.2, "no_speech_prob": 0.01,
         "words": [{"start": 0.0, "end": 0.6, "word": " Hello", "probability": 0.9},
                   {"start": 0.7, "end": 1.5, "word": " there.", "probability": 0.8}]},
        {"id": 2, "start": 2.0, "end": 4.2, "text": "General Kenobi.",
         "avg_logprob": -0.3, "no_speech_prob": 0.02,
         "words": [{"start": 2.0, "end": 2.9, "word": " General", "probability": 0.9},
                   {"start": 3.0, "end": 4.2, "word": " Kenobi.", "probability": 0.7}]},
    ],
}  # fmt: skip


def test_verbose_json_is_openai_shaped():
    shaped = verbose(RESULT, ("word", "segment"))
    assert shaped["usage"] == {"type": "duration", "seconds": 5}
    assert [s["id"] for s in shaped["segments"]] == [0, 1]
    assert shaped["segments"][1]["seek"] == 200 and shaped["segments"][0]["temperature"] == 0.2
    assert [w["word"] for w in shaped["words"]] == ["Hello", "there.", "General", "Kenobi."]
    assert "segments" not in verbose(RESULT, ("word",)) and "words" not in verbose(RESULT, ())


def test_compression_ratio_is_whispers():
    assert compression_ratio("") == 0.0
    assert compression_ratio("la " * 200) > 2.4 > compression_ratio("And so, my fellow Americans")


def test_rendered_formats():
    assert json.loads(render(RESULT, "json")) == {
        "text": RESULT["text"],
        "usage": {"type": "duration", "seconds": 5},
    }
    assert render(RESULT, "text") == "Hello there. General Kenobi.\n"
    assert render(RESULT, "srt").startswith("1\n00:00:00,000 --> 00:00:01,500\nHello there.\n")
    assert render(RESULT, "vtt").startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.")


def test_stream_events_are_deltas_then_done():
    events = [json.loads(e.removeprefix("data: ")) for e in stream_events(RESULT)]
    assert events == [
        {"type": "transcript.text.delta", "delta": "Hello there."},
        {"type": "transcript.text.delta", "delta": "General Kenobi."},
        {"type": "transcript.text.done", "text": RESULT["text"]},
    ]


def test_served_models_from_worker_info():
    info = {
        "a@host": {"queues": ["asr"], "children": [
            {"queues": ["asr"], "model": {"model_id": "tiny.en", "loaded": True, "multilingual": False}},
            {"queues": ["asr"], "model": None},  # still loading
        ]},
        "b@host": {"queues": ["asr-large"], "children": [
            {"queues": ["asr-large"],
             "model": {"model_id": "large-v3", "loaded": True, "multilingual": True}},
            {"queues": ["asr-large"], "model": {"model_id": "large-v3", "loaded": False}},
        ]},
    }  # fmt: skip
    models, consumed = served_models(info)
    assert consumed == {"asr", "asr-large"}
    assert models["tiny.en"].queues == {"asr"} and models["tiny.en"].multilingual is False
    assert models["large-v3"].queues == {"asr-large"} and models["large-v3"].workers == {"b@host"}


def test_diarized_json_is_openai_shaped_and_asks_for_speakers():
    from openai.types.audio import TranscriptionDiarized

    labelled = RESULT | {
        "segments": [s | {"speaker": f"SPEAKER_0{i}"} for i, s in enumerate(RESULT["segments"])]
    }
    parsed = TranscriptionDiarized.model_validate(json.loads(render(labelled, "diarized_json")))
    assert [(s.id, s.speaker, s.text) for s in parsed.segments] == [
        ("seg_001", "SPEAKER_00", "Hello there."),
        ("seg_002", "SPEAKER_01", "General Kenobi."),
    ]
    assert parsed.task == "transcribe" and parsed.text == RESULT["text"]
    asked = audio_request({"response_format": ["diarized_json"]}, task="transcribe")
    assert asked.options["diarize"] is True


def test_stream_events_after_text_sent_while_running_add_only_the_rest():
    def kinds(events):
        return [json.loads(e.removeprefix("data: ")) for e in events]

    heard = RESULT["segments"][0]["text"]
    rest = kinds(stream_events(RESULT, sent=heard))
    assert rest == [
        {"type": "transcript.text.delta", "delta": RESULT["text"][len(heard) :]},
        {"type": "transcript.text.done", "text": RESULT["text"]},
    ]
    # Text read again changed what was heard: no delta can fix it, the done event carries the truth.
    assert kinds(stream_events(RESULT, sent="something else")) == [
        {"type": "transcript.text.done", "text": RESULT["text"]}
    ]


def test_request_body_documents_each_media_type_a_route_reads_itself() -> None:
    doc = request_body(
        {
            "application/json": (["audio"], {"audio": {"type": "string"}}),
            "multipart/form-data": (["file"], {"file": {"type": "string", "format": "binary"}}),
        }
    )
    content = doc["requestBody"]["content"]
    assert doc["requestBody"]["required"] is True
    assert list(content) == ["application/json", "multipart/form-data"]
    assert content["multipart/form-data"]["schema"]["required"] == ["file"]
