"""Errors in OpenAI's shape, and the HTTP status of each worker error type.

Every error answer is ``{"error": {"message", "type", "param", "code"}}``, the
shape OpenAI's SDKs parse into their exception classes (401 becomes
``AuthenticationError``, 400 ``BadRequestError``, 503 ``InternalServerError`` ...).
Worker errors reach the producer as their class name (``TranscriptionFailed.error_type``),
so they are mapped by name: the producer never imports ``worker``.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from asr_protocol.redact import mask_text
from producer.errors import BrokerUnavailableError

__all__ = ["ApiError", "ErrorBody", "error_responses", "install_handlers", "worker_error"]

_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")

log = logging.getLogger(__name__)

INVALID_REQUEST = "invalid_request_error"
SERVER_ERROR = "server_error"


class ErrorDetail(BaseModel):
    """What went wrong: a message, OpenAI's error type, the parameter at fault and a code."""

    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    """Every error answer of the API (OpenAI's shape)."""

    error: ErrorDetail


#: What each error status means, as the OpenAPI document says it.
_STATUS_MEANS = {
    400: "Bad request: a parameter, an option, the form or the audio is invalid",
    401: "No API key, or a wrong one",
    404: "No such job or model",
    409: "The job has not ended, has already ended, or was cancelled",
    413: "The upload is larger than ASR_API_MAX_UPLOAD_BYTES",
    415: "The body is not multipart/form-data (or JSON, where a route takes it)",
    422: "The audio is too long or too large for the workers, or crashed them every time",
    500: "The worker failed the job with an unexpected error",
    503: "Redis cannot be reached, or no worker can serve the request now (Retry-After)",
    504: "The job did not end within ASR_API_WAIT_SECONDS; it goes on (follow it at /v1/jobs/{id})",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses=`` for the error statuses it answers, each with :class:`ErrorBody`."""
    return {status: {"model": ErrorBody, "description": _STATUS_MEANS[status]} for status in statuses}


class ApiError(Exception):
    """An error answer: HTTP status, OpenAI error type, the parameter at fault and a code."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = INVALID_REQUEST,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


class _Mapping(NamedTuple):
    status: int
    type: str
    code: str


_BAD_AUDIO = _Mapping(400, INVALID_REQUEST, "invalid_audio")
_TOO_BIG = _Mapping(422, INVALID_REQUEST, "audio_too_large")
_BAD_PATH = _Mapping(400, INVALID_REQUEST, "invalid_audio_path")
_TIMEOUT = _Mapping(504, SERVER_ERROR, "timeout")

#: The worker's error class names (worker/pipeline/errors.py and Celery's own) -> the answer.
WORKER_ERRORS: dict[str, _Mapping] = {
    "InputError": _Mapping(400, INVALID_REQUEST, "invalid_input"),
    "InvalidOptionsError": _Mapping(400, INVALID_REQUEST, "invalid_options"),
    "AudioDecodeError": _BAD_AUDIO,
    "EmptyAudioError": _BAD_AUDIO,
    "AudioTooLongError": _TOO_BIG,
    "FileTooLargeError": _TOO_BIG,
    "InvalidPathError": _BAD_PATH,
    "PathNotAllowedError": _BAD_PATH,
    "AudioNotFoundError": _BAD_PATH,
    "NotAFileError": _BAD_PATH,
    "AudioUnreadableError": _BAD_PATH,
    "AccessDeniedError": _BAD_PATH,
    # A file that killed its worker process every time: the input, not the service.
    "RedeliveryLimitError": _Mapping(422, INVALID_REQUEST, "audio_crashed_worker"),
    "ModelUnavailableError": _Mapping(503, SERVER_ERROR, "model_unavailable"),
    # A fleet without speaker labels refuses them the same way on every retry: a request it
    # cannot serve (as a translation for an English-only model), not a service that is down.
    "DiarizationUnavailableError": _Mapping(400, INVALID_REQUEST, "diarization_unavailable"),
    "TransientError": _Mapping(503, SERVER_ERROR, "transient_error"),
    "TranscriptionTimeoutError": _TIMEOUT,
    "TimeLimitExceeded": _TIMEOUT,
    "SoftTimeLimitExceeded": _TIMEOUT,
    # Celery's, for a job cancelled (producer.Client.cancel, DELETE /v1/jobs/{id}).
    "TaskRevokedError": _Mapping(409, INVALID_REQUEST, "job_cancelled"),
}
_UNKNOWN = _Mapping(500, SERVER_ERROR, "worker_error")


def worker_error(error_type: str, message: str) -> ApiError:
    """The answer to a job the worker failed with ``error_type``."""
    mapped = WORKER_ERRORS.get(error_type, _UNKNOWN)
    return ApiError(mapped.status, f"{error_type}: {message}", type=mapped.type, code=mapped.code)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    kind = INVALID_REQUEST if exc.status_code < 500 else SERVER_ERROR
    error = ApiError(
        exc.status_code, str(exc.detail), type=kind, headers=dict(exc.headers) if exc.headers else None
    )
    return error.response()


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    param = ".".join(location) or None
    return ApiError(400, f"{param}: {first.get('msg', 'invalid request')}", param=param).response()


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    """Redis (broker or result backend) cannot be reached: 503, which clients retry."""
    log.warning("%s %s: Redis unavailable: %s", request.method, request.url.path, mask_text(str(exc)))
    message = (
        str(exc) if isinstance(exc, BrokerUnavailableError) else f"cannot reach Redis: {type(exc).__name__}"
    )
    error = ApiError(
        503, mask_text(message), type=SERVER_ERROR, code="broker_unavailable", headers={"Retry-After": "5"}
    )
    return error.response()


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return ApiError(500, "internal error (see the API's log)", type=SERVER_ERROR).response()


def _without_validation_422(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` without FastAPI's 422 answers: :func:`install_handlers` answers them 400 (ErrorBody)."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            answer = operation.get("responses", {}).get("422", {})
            if any(name in str(answer) for name in _VALIDATION_SCHEMAS):
                del operation["responses"]["422"]
    for name in _VALIDATION_SCHEMAS:
        schema.get("components", {}).get("schemas", {}).pop(name, None)
    return schema


def install_handlers(app: FastAPI) -> None:
    """Answer every error, ours, Starlette's and FastAPI's, in OpenAI's shape, and document it so."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for unavailable in (BrokerUnavailableError, redis.ConnectionError, redis.TimeoutError, OperationalError):
        app.add_exception_handler(unavailable, _unavailable)
    app.add_exception_handler(Exception, _unexpected)
    generate = app.openapi
    app.openapi = lambda: _without_validation_422(generate())  # type: ignore[method-assign]
