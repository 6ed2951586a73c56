"""A minimal WSGI app over the model loader (no Celery): the README's Gunicorn example.

GET /config                 -> the loader's get_model_config() of the answering process
POST /transcribe?path=/abs  -> {"text": ..., "pid": ...}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from worker.asr import get_model, get_model_config


def _json(start_response: Callable[..., Any], status: str, body: dict[str, Any]) -> Iterable[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
    if path == "/config" and method == "GET":
        return _json(start_response, "200 OK", get_model_config())
    if path == "/transcribe" and method == "POST":
        audio = parse_qs(environ.get("QUERY_STRING", "")).get("path", [""])[0]
        segments, info = get_model().transcribe(audio, beam_size=5)
        text = "".join(s.text for s in segments).strip()
        return _json(
            start_response, "200 OK", {"text": text, "language": info.language, **get_model_config()}
        )
    return _json(start_response, "404 Not Found", {"error": "not found"})
