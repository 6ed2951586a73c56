"""The jobs API for long files: submit, follow, fetch, cancel and list jobs by id.

``POST /v1/jobs`` answers 202 at once with the job's id and a ``Location``;
``GET /v1/jobs/{id}`` and ``/events`` follow it; ``/transcript`` fetches it in
any format of :mod:`asr_protocol.formats` once it succeeded; ``DELETE`` cancels it
(:meth:`producer.Client.cancel`); ``GET /v1/jobs`` lists what the workers hold
and what waits in the queue.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel

from asr_protocol import formats
from asr_protocol.states import ENDED_STATES
from producer.api.auth import require_key
from producer.api.deps import ServiceDep, job_upload
from producer.api.errors import WORKER_ERRORS, ApiError, error_responses
from producer.api.options import check_job_options
from producer.api.service import Service
from producer.api.shapes import EVENT_STREAM, request_body
from producer.api.uploads import Upload
from producer.client import JobStatus
from producer.upload import is_url

__all__ = ["router"]

#: How many waiting jobs ``GET /v1/jobs/{id}`` reads through before asking the workers.
QUEUE_SEARCH = 1000
#: The formats of asr_protocol.formats (the CLI's --format).
TranscriptFormat = Literal["json", "txt", "srt", "vtt", "tsv", "rttm"]

router = APIRouter(
    prefix="/v1/jobs", dependencies=[Depends(require_key)], responses=error_responses(401, 503)
)

_SUBMIT_DOC = request_body(
    {
        "application/json": (
            ["audio"],
            {
                "audio": {
                    "type": "string",
                    "description": "an absolute path on storage the workers share, or a URL they may read",
                    "example": "/shared/audio/call.wav",
                },
                "options": {"type": "object", "description": "asr.transcribe options"},
                "model": {"type": "string", "description": "picks the queue (see /v1/models)"},
            },
        ),
        "multipart/form-data": (
            ["file"],
            {
                "file": {"type": "string", "format": "binary"},
                "options": {"type": "string", "description": "a JSON object of options"},
                "model": {"type": "string"},
            },
        ),
    }
)


def _error(status: JobStatus) -> dict[str, str] | None:
    if status.error is None:
        return None
    kind, _, message = status.error.partition(": ")
    return {"type": kind, "message": message} if message else {"type": status.state, "message": kind}


def job_view(status: JobStatus) -> dict[str, Any]:
    """A job as the API shows it (the stored audio path is internal and left out)."""
    return {
        "id": status.id,
        "object": "job",
        "state": status.state,
        "progress": status.progress,
        "queue_position": status.queue_position,
        "worker": status.worker,
        "error": _error(status),
    }


def meta_view(job_id: str, meta: dict[str, Any]) -> dict[str, Any]:
    """A job as :func:`job_view` shows it, from its stored meta alone (one Redis read)."""
    state, info = meta["status"], meta.get("result")
    error = None
    if state in ("FAILURE", "REVOKED") and isinstance(info, dict):
        message = info.get("exc_message")
        text = " ".join(map(str, message)) if isinstance(message, list) else str(message or "")
        error = {"type": str(info.get("exc_type", state)), "message": text}
    worker = meta.get("worker") or (info.get("hostname") if isinstance(info, dict) else None)
    return {
        "id": job_id,
        "object": "job",
        "state": state,
        "progress": info if state == "PROGRESS" and isinstance(info, dict) else None,
        "queue_position": None,
        "worker": worker,
        "error": error,
    }


async def _view(service: Service, job_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The job's stored meta and view; 404 for a job no one knows.

    A job that a worker has taken has a stored state, read at once; one waiting among
    the first :data:`QUEUE_SEARCH` of a queue the API knows (the default queue and those
    of the models the workers serve) is found there. For any other (held by a worker but
    not started, or on another queue) the producer library asks the workers
    (:meth:`producer.Client.status`), which takes a few seconds.
    """
    meta = await service.meta(job_id)
    if meta["status"] != "PENDING":
        return meta, meta_view(job_id, meta)
    queues = service.models.queues()
    queued = await anyio.to_thread.run_sync(lambda: queued_jobs(service, QUEUE_SEARCH, queues))
    for view in queued:
        if view["id"] == job_id:
            return meta, view
    status = await anyio.to_thread.run_sync(lambda: service.client.status(job_id))
    if not status.known:
        raise ApiError(
            404, f"no job {job_id!r} (unknown, or its result expired)", param="job_id", code="job_not_found"
        )
    return await service.meta(job_id), job_view(status)


async def _submit_json(request: Request, service: Service) -> tuple[str, dict[str, Any], str | None]:
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("audio"), str) or not body["audio"]:
        raise ApiError(400, 'send {"audio": "<absolute path or URL>", "options": {...}}', param="audio")
    audio = body["audio"]
    # A URL goes to the workers as it is: their ASR_AUDIO_URLS decides what they may read.
    if not is_url(audio) and not os.path.isabs(audio):
        raise ApiError(
            400,
            f"audio={audio!r}: give an absolute path on storage the workers share, or a URL",
            param="audio",
        )
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise ApiError(400, "model must be a string (see /v1/models)", param="model")
    return audio, check_job_options(body.get("options")), model


class Submitted(BaseModel):
    """``POST /v1/jobs``'s answer: the job's id; follow it at ``Location``."""

    id: str
    object: Literal["job"]
    state: str
    queue: str


@router.post(
    "",
    status_code=202,
    openapi_extra=_SUBMIT_DOC,
    summary="Submit a job; answers 202 at once",
    response_model=Submitted,
    responses=error_responses(400, 413, 415),
)
async def submit_job(
    request: Request, service: ServiceDep, upload: Annotated[Upload | None, Depends(job_upload)]
) -> JSONResponse:
    if upload is None:
        audio, options, model = await _submit_json(request, service)
    else:
        try:
            raw = upload.get("options")
            options = check_job_options(json.loads(raw) if raw else None)
        except ValueError:
            await upload.discard()
            raise ApiError(400, "options is not valid JSON", param="options") from None
        except ApiError:
            await upload.discard()
            raise
        audio, model = upload.location, upload.get("model")
    try:
        queue = await service.models.queue_for(model)
        batch = bool(options.pop("batch", False))
        job = await service.submit(audio, queue=queue, batch=batch, **options)
    except BaseException:
        if upload is not None:
            await upload.discard()
        raise
    service.metrics.submitted.labels(queue).inc()
    if upload is not None:
        await service.track_upload(job.id, upload.location)
        service.release_when_done(job.id, upload.location)
    body = {"id": job.id, "object": "job", "state": "PENDING", "queue": queue}
    return JSONResponse(body, status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})


@router.get(
    "", summary="Jobs the workers hold and jobs waiting in the queues", responses=error_responses(400)
)
async def list_jobs(service: ServiceDep, limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    """The jobs the workers hold, then the first ``limit`` waiting in each queue the API knows."""
    # Both broadcasts wait their whole timeout: at once, not one after the other.
    held, _ = await asyncio.gather(
        anyio.to_thread.run_sync(service.client.list_jobs), service.models.refresh()
    )
    queues = service.models.queues()  # the default queue, and those of the models the workers serve
    queued = await anyio.to_thread.run_sync(lambda: queued_jobs(service, limit, queues))
    data = [job_view(job) for job in held] + queued
    return {"object": "list", "data": data}


def queued_jobs(service: Service, limit: int, queues: list[str]) -> list[dict[str, Any]]:
    """The first ``limit`` jobs waiting in each of ``queues``, next first; positions count within a queue."""
    found: list[dict[str, Any]] = []
    with service.client.app.connection_for_read() as connection:
        channel = connection.default_channel
        client = getattr(channel, "client", None)
        if client is None:  # not a Redis broker
            return found
        for queue in queues:
            keys = [channel._q_for_pri(queue, pri) for pri in sorted(channel.priority_steps)]
            # kombu LPUSHes and workers BRPOP: the next job is the last element of each list.
            waiting = [raw for key in keys for raw in reversed(client.lrange(key, -limit, -1))][:limit]
            for position, raw in enumerate(waiting, 1):
                found.append(_queued_view(json.loads(raw).get("headers", {}).get("id"), queue, position))
    return found


def _queued_view(job_id: str | None, queue: str, position: int) -> dict[str, Any]:
    return {
        "id": job_id,
        "object": "job",
        "state": "PENDING",
        "queue": queue,
        "queue_position": position,
        "progress": None,
        "worker": None,
        "error": None,
    }


@router.get("/{job_id}", summary="State, progress and error of a job", responses=error_responses(404))
async def get_job(job_id: str, service: ServiceDep) -> dict[str, Any]:
    _, view = await _view(service, job_id)
    return view


@router.get(
    "/{job_id}/transcript",
    summary="The transcript of a job that succeeded",
    response_class=Response,
    responses={
        200: {
            "description": "The transcript in the format asked for",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/plain": {"schema": {"type": "string"}},
                "text/vtt": {"schema": {"type": "string"}},
            },
        },
        **error_responses(400, 404, 409),
    },
)
async def get_transcript(job_id: str, service: ServiceDep, format: TranscriptFormat = "json") -> Response:
    meta, view = await _view(service, job_id)
    if meta["status"] == "SUCCESS":
        try:
            text = formats.render(meta["result"], format)
        except ValueError as exc:  # rttm of a transcript without speaker labels
            raise ApiError(400, str(exc), param="format", code="invalid_format") from None
        media = "application/json" if format == "json" else "text/vtt" if format == "vtt" else "text/plain"
        return Response(text, media_type=media)
    if view["state"] not in ENDED_STATES:
        raise ApiError(
            409,
            f"job {job_id} has not ended ({view['state']}); try again later",
            code="job_not_done",
            headers={"Retry-After": "2"},
        )
    error = view["error"] or {"type": view["state"], "message": ""}
    mapped = WORKER_ERRORS.get(error["type"])
    code = "job_cancelled" if view["state"] == "REVOKED" else mapped.code if mapped else "job_failed"
    raise ApiError(409, f"job {job_id} ended {view['state']}: {error['type']}: {error['message']}", code=code)


def _event(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n"


async def _events(service: Service, job_id: str) -> AsyncIterator[str]:
    last: dict[str, Any] = {"status": "PENDING"}
    async for last in service.watch(job_id):
        progress = last.get("result") if last["status"] == "PROGRESS" else None
        yield _event("state", {"id": job_id, "state": last["status"], "progress": progress})
    yield _event("done", meta_view(job_id, last))


@router.get(
    "/{job_id}/events",
    summary="Server-sent state and progress until the job ends",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-sent events",
            "content": {"text/event-stream": EVENT_STREAM},
        },
        **error_responses(404),
    },
)
async def job_events(job_id: str, service: ServiceDep) -> StreamingResponse:
    await _view(service, job_id)
    return StreamingResponse(
        _events(service, job_id), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


@router.delete(
    "/{job_id}",
    summary="Cancel a queued or running job (it ends REVOKED)",
    responses=error_responses(404, 409),
)
async def cancel_job(job_id: str, service: ServiceDep) -> dict[str, Any]:
    _, before = await _view(service, job_id)
    if before["state"] in ENDED_STATES:
        raise ApiError(409, f"job {job_id} has already ended ({before['state']})", code="job_ended")
    after = await anyio.to_thread.run_sync(lambda: service.client.cancel(job_id))
    return job_view(after)
