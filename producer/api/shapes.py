"""Transcription results in the shapes OpenAI's audio endpoints answer with.

``json`` is ``{"text", "usage"}``; ``verbose_json`` adds ``task``, ``language``,
``duration``, ``segments`` (ids from 0, with ``seek``, ``tokens``, ``temperature``,
``compression_ratio`` as Whisper defines them) and ``words``; ``text``, ``srt`` and
``vtt`` are rendered by :mod:`asr_protocol.formats`, as the CLI writes them; ``diarized_json``
is ``{"task", "duration", "text", "segments"}`` with each segment's ``speaker`` (the job is
diarized). The SDK's ``Transcription``, ``TranscriptionVerbose`` and
``TranscriptionDiarized`` models parse these answers.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

from asr_protocol import formats

__all__ = ["EVENT_STREAM", "RESPONSE_FORMATS", "media_type", "render", "request_body", "stream_events"]

RESPONSE_FORMATS = ("json", "text", "srt", "verbose_json", "vtt", "diarized_json")
_MEDIA_TYPES = {
    "json": "application/json",
    "verbose_json": "application/json",
    "diarized_json": "application/json",
    "vtt": "text/vtt",
}


#: How the OpenAPI document describes a ``text/event-stream`` answer: each event, its data JSON.
EVENT_STREAM: dict[str, Any] = {
    "schema": {
        "type": "object",
        "required": ["data"],
        "properties": {
            "event": {"type": "string"},
            "data": {"type": "string", "description": "a JSON object"},
            "id": {"type": "string"},
        },
    }
}


def request_body(schemas: dict[str, tuple[list[str], dict[str, Any]]]) -> dict[str, Any]:
    """A route's ``openapi_extra`` for a body it reads itself: ``{media type: (required, properties)}``.

    A form's ``file`` is declared as audio (``encoding``): the upload refuses other media types (415).
    """
    content: dict[str, Any] = {
        media: {"schema": {"type": "object", "required": required, "properties": properties}}
        for media, (required, properties) in schemas.items()
    }
    for media, (_, properties) in schemas.items():
        if media == "multipart/form-data" and "file" in properties:
            content[media]["encoding"] = {"file": {"contentType": "audio/*, video/*"}}
    return {"requestBody": {"required": True, "content": content}}


def media_type(response_format: str) -> str:
    return _MEDIA_TYPES.get(response_format, "text/plain")


def _usage(result: dict[str, Any]) -> dict[str, Any]:
    # OpenAI bills whisper-1 by the second, rounded up, and says so in every answer.
    return {"type": "duration", "seconds": math.ceil(float(result.get("duration") or 0.0))}


def compression_ratio(text: str) -> float:
    """Whisper's gzip compression ratio of a segment's text (high means repetitive)."""
    data = text.encode("utf-8")
    return round(len(data) / len(zlib.compress(data)), 4) if data else 0.0


def _temperature(result: dict[str, Any]) -> float:
    value = result.get("options", {}).get("temperature")
    return float(value) if isinstance(value, (int, float)) else 0.0


def _segment(segment: dict[str, Any], temperature: float) -> dict[str, Any]:
    shaped = {
        "id": int(segment["id"]) - 1,
        "seek": round(float(segment["start"]) * 100),  # Whisper counts 10 ms frames
        "start": segment["start"],
        "end": segment["end"],
        "text": segment["text"],
        "tokens": [],  # the worker does not keep token ids
        "temperature": temperature,
        "avg_logprob": segment.get("avg_logprob", 0.0),
        "compression_ratio": compression_ratio(segment["text"]),
        "no_speech_prob": segment.get("no_speech_prob", 0.0),
    }
    if segment.get("channel") is not None:
        shaped["channel"] = segment["channel"]
    return shaped


def _words(segments: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"word": word["word"].strip(), "start": word["start"], "end": word["end"]}
        for segment in segments
        for word in segment.get("words", [])
    ]


def verbose(result: dict[str, Any], granularities: Sequence[str]) -> dict[str, Any]:
    """``verbose_json``: segments unless only ``word`` was asked for, words when ``word`` was."""
    segments = result.get("segments", [])
    shaped: dict[str, Any] = {
        "task": result.get("options", {}).get("task", "transcribe"),
        "language": result.get("language") or "",
        "duration": result.get("duration", 0.0),
        "text": result.get("text", ""),
    }
    if "segment" in granularities or not granularities:
        temperature = _temperature(result)
        shaped["segments"] = [_segment(s, temperature) for s in segments]
    if "word" in granularities:
        shaped["words"] = _words(segments)
    shaped["usage"] = _usage(result)
    return shaped


def diarized(result: dict[str, Any]) -> dict[str, Any]:
    """``diarized_json``: the transcript's segments with their speakers (``SPEAKER_00``, ...)."""
    return {
        "task": "transcribe",
        "duration": result.get("duration", 0.0),
        "text": result.get("text", ""),
        "segments": [
            {
                "type": "transcript.text.segment",
                "id": f"seg_{number:03d}",
                "start": segment["start"],
                "end": segment["end"],
                "text": segment["text"],
                "speaker": str(segment.get("speaker", "")),
            }
            for number, segment in enumerate(result.get("segments", []), 1)
        ],
        "usage": _usage(result),
    }


def render(result: dict[str, Any], response_format: str, granularities: Sequence[str] = ()) -> str:
    """The body of a transcription answer in ``response_format`` (one of :data:`RESPONSE_FORMATS`)."""
    if response_format == "json":
        return json.dumps({"text": result.get("text", ""), "usage": _usage(result)}, ensure_ascii=False)
    if response_format == "verbose_json":
        return json.dumps(verbose(result, granularities), ensure_ascii=False)
    if response_format == "diarized_json":
        return json.dumps(diarized(result), ensure_ascii=False)
    if response_format == "text":
        return result.get("text", "") + "\n"
    return formats.render(result, response_format)


def sse(data: dict[str, Any]) -> str:
    """One server-sent event carrying ``data`` as JSON."""
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def stream_events(result: dict[str, Any], *, sent: str = "") -> Iterator[str]:
    """The last ``transcript.text.delta`` events, then ``transcript.text.done`` with the final text.

    ``sent`` is the text already streamed while the job ran: only what the final text adds
    to it follows as a delta. With nothing sent, one delta per segment, in time order. The
    final text may differ from what was heard on the way (speech read again fills a gap);
    ``transcript.text.done`` always carries the final text.
    """
    text = result.get("text", "")
    if not sent:
        for segment in result.get("segments", []):
            if segment["text"]:
                yield sse({"type": "transcript.text.delta", "delta": segment["text"]})
    elif text.startswith(sent) and len(text) > len(sent):
        yield sse({"type": "transcript.text.delta", "delta": text[len(sent) :]})
    yield sse({"type": "transcript.text.done", "text": text})
