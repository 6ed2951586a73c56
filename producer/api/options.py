"""The form fields of OpenAI's audio endpoints, checked and turned into the worker's job options."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from producer.api.errors import ApiError
from producer.api.shapes import RESPONSE_FORMATS

__all__ = ["JOB_OPTIONS", "AudioRequest", "audio_request", "check_job_options"]

#: What ``asr.transcribe`` accepts (worker/pipeline/options.py), plus the producer's ``batch``.
JOB_OPTIONS = frozenset(
    {
        "language", "task", "beam_size", "vad_filter", "word_timestamps", "initial_prompt", "hotwords",
        "temperature", "channels", "fanout_seconds", "callback_url", "output_url", "output_formats", "batch",
        "diarize", "num_speakers", "min_speakers", "max_speakers", "known_speakers",
    }
)  # fmt: skip
GRANULARITIES = ("word", "segment")
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")


@dataclass(frozen=True)
class AudioRequest:
    """What a transcription or translation request asks for."""

    model: str | None
    response_format: str
    granularities: tuple[str, ...]
    stream: bool
    #: The job's options, as ``producer.Client.submit`` takes them.
    options: dict[str, Any] = field(default_factory=dict)


def _one(fields: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = fields.get(name)
    return values[-1].strip() if values else None


def _temperature(raw: str | None) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, f"temperature={raw!r} is not a number", param="temperature") from None
    if not 0.0 <= value <= 1.0:
        raise ApiError(400, f"temperature={raw!r} must be between 0 and 1", param="temperature")
    # OpenAI: 0 lets the model raise the temperature when decoding fails, the worker's default.
    return value or None


def _stream(raw: str | None) -> bool:
    value = (raw or "").lower()
    if value not in _TRUE + _FALSE:
        raise ApiError(400, f"stream={raw!r} must be true or false", param="stream")
    return value in _TRUE


def audio_request(fields: Mapping[str, Sequence[str]], *, task: str) -> AudioRequest:
    """Check the form fields of ``/v1/audio/transcriptions`` (``task="transcribe"``) or ``translations``.

    Raises:
        ApiError: 400 naming the field at fault.
    """
    response_format = _one(fields, "response_format") or "json"
    if response_format not in RESPONSE_FORMATS:
        raise ApiError(
            400,
            f"response_format={response_format!r} is not one of {', '.join(RESPONSE_FORMATS)}",
            param="response_format",
        )
    granularities = tuple(
        dict.fromkeys(
            value.strip()
            for name in ("timestamp_granularities[]", "timestamp_granularities")
            for value in fields.get(name, [])
        )
    )
    for value in granularities:
        if value not in GRANULARITIES:
            raise ApiError(
                400,
                f"timestamp_granularities: {value!r} is not word or segment",
                param="timestamp_granularities",
            )
    if granularities and response_format != "verbose_json":
        raise ApiError(
            400, "timestamp_granularities needs response_format=verbose_json", param="timestamp_granularities"
        )
    stream = _stream(_one(fields, "stream"))
    if stream and response_format not in ("json", "text"):
        raise ApiError(
            400, "stream=true answers with text events; use response_format json or text", param="stream"
        )
    options: dict[str, Any] = {"task": task}
    language = _one(fields, "language") if task == "transcribe" else None
    if language:
        options["language"] = language
    prompt = _one(fields, "prompt")
    if prompt:
        options["initial_prompt"] = prompt
    temperature = _temperature(_one(fields, "temperature"))
    if temperature is not None:
        options["temperature"] = temperature
    if "word" in granularities:
        options["word_timestamps"] = True
    if response_format == "diarized_json":
        options["diarize"] = True  # a worker with ASR_DIARIZATION=true labels the speakers
    return AudioRequest(_one(fields, "model") or None, response_format, granularities, stream, options)


def check_job_options(options: Any) -> dict[str, Any]:
    """The ``options`` of ``POST /v1/jobs``: an object of known option names (the worker checks values).

    Raises:
        ApiError: 400 not an object, or an unknown name.
    """
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ApiError(400, "options must be a JSON object", param="options")
    unknown = sorted(set(options) - JOB_OPTIONS)
    if unknown:
        raise ApiError(
            400,
            f"unknown option(s): {', '.join(unknown)} (known: {', '.join(sorted(JOB_OPTIONS))})",
            param=f"options.{unknown[0]}",
        )
    return dict(options)
