"""OpenAI's audio endpoints: ``/v1/audio/transcriptions``, ``/v1/audio/translations``, ``/v1/models``.

The upload streams to ``ASR_UPLOAD_URL`` (a shared directory or an S3 prefix), the job is enqueued on the
queue of the requested model, and the answer waits for the job (pub/sub, not
polling) up to ``ASR_API_WAIT_SECONDS``; past that it is 504 and names the job,
which goes on and can be followed at ``/v1/jobs/{id}``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends
from fastapi.responses import Response, StreamingResponse

from asr_protocol.states import ENDED_STATES
from producer.api.auth import require_key
from producer.api.deps import ServiceDep, UploadDep
from producer.api.errors import SERVER_ERROR, ApiError, error_responses, worker_error
from producer.api.options import AudioRequest, audio_request
from producer.api.references import known_speakers, remove_references, store_references
from producer.api.service import Service
from producer.api.shapes import EVENT_STREAM, media_type, render, request_body, sse, stream_events
from producer.api.uploads import Upload
from producer.errors import TranscriptionFailed

__all__ = ["final_result", "router"]

router = APIRouter(dependencies=[Depends(require_key)], responses=error_responses(401, 503))

_FORM_DOC = request_body(
    {
        "multipart/form-data": (
            ["file"],
            {
                "file": {"type": "string", "format": "binary"},
                "model": {"type": "string", "default": "whisper-1"},
                "language": {"type": "string"},
                "prompt": {"type": "string"},
                "response_format": {
                    "type": "string",
                    "enum": ["json", "text", "srt", "verbose_json", "vtt", "diarized_json"],
                },
                "temperature": {"type": "number", "minimum": 0, "maximum": 1},
                "timestamp_granularities[]": {"type": "array", "items": {"enum": ["word", "segment"]}},
                "stream": {"type": "boolean"},
            },
        )
    }
)
#: Every answer of the two audio routes: the transcript in ``response_format`` (or as
#: events with ``stream=true``), or an error the upload, the options or the job led to.
_AUDIO_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The transcript in response_format, or server-sent events with stream=true",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/plain": {"schema": {"type": "string"}},
            "text/vtt": {"schema": {"type": "string"}},
            "text/event-stream": EVENT_STREAM,
        },
    },
    **error_responses(400, 409, 413, 415, 422, 500, 504),
}


async def final_result(service: Service, job_id: str, meta: dict[str, Any]) -> dict[str, Any]:
    """The transcript of an ended job, or the error answer for why there is none.

    Raises:
        ApiError: the job failed (mapped by the worker's error type), was cancelled, or is still running.
    """
    state = meta["status"]
    if state in ENDED_STATES:
        service.count_end(meta)
    if state == "SUCCESS":
        result: dict[str, Any] = meta["result"]
        return result
    if state not in ENDED_STATES:
        raise ApiError(
            504,
            f"job {job_id} has not ended within {service.settings.wait_seconds:g} s; it goes on: "
            f"follow it at /v1/jobs/{job_id}",
            type=SERVER_ERROR,
            code="timeout",
        )
    try:  # the producer library turns the stored failure into its typed error
        await anyio.to_thread.run_sync(lambda: service.client.job(job_id).result(timeout=0))
    except TranscriptionFailed as failure:
        raise worker_error(failure.error_type, failure.message) from None
    raise ApiError(500, f"job {job_id} ended {state} without a result", type=SERVER_ERROR)


async def _refuse_unservable(service: Service, request: AudioRequest, queue: str) -> None:
    """Refuse a translation up front when every model on the queue is known to be English-only."""
    if request.options.get("task") != "translate":
        return
    models = [m for m in (await service.models.models()).values() if queue in m.queues]
    if models and all(m.multilingual is False for m in models):
        names = ", ".join(sorted(m.id for m in models))
        raise ApiError(
            400,
            f"translation needs a multilingual model; {names} on queue {queue!r} is English-only",
            param="model",
            code="model_not_multilingual",
        )


async def _enqueue(service: Service, upload: Upload, request: AudioRequest) -> str:
    queue = await service.models.queue_for(request.model)
    await _refuse_unservable(service, request, queue)
    job = await service.submit(upload.location, queue=queue, **request.options)
    service.metrics.submitted.labels(queue).inc()
    await service.track_upload(job.id, upload.location)
    return job.id


async def _transcribe(service: Service, upload: Upload, task: str) -> Response:
    references: dict[str, str] = {}
    try:
        request = audio_request(upload.fields, task=task)
        speakers = known_speakers(upload.fields, diarized=request.response_format == "diarized_json")
        if speakers:
            references = await anyio.to_thread.run_sync(store_references, service.settings.uploads, speakers)
            request.options["known_speakers"] = references
        job_id = await _enqueue(service, upload, request)
    except BaseException:
        await upload.discard()
        await anyio.to_thread.run_sync(remove_references, list(references.values()))
        raise
    if request.stream:
        return StreamingResponse(
            _stream(service, job_id, upload), media_type="text/event-stream", headers={"X-Job-Id": job_id}
        )
    ended = False
    try:
        meta = await service.wait(job_id, service.settings.wait_seconds)
        ended = meta["status"] in ENDED_STATES
    finally:
        for location in [upload.location, *references.values()]:
            if ended:
                await service.release_upload(job_id, location)
            else:  # timed out, or the caller went away: the job goes on
                service.release_when_done(job_id, location)
    result = await final_result(service, job_id, meta)
    body = render(result, request.response_format, request.granularities)
    return Response(body, media_type=media_type(request.response_format), headers={"X-Job-Id": job_id})


async def _stream(service: Service, job_id: str, upload: Upload) -> AsyncIterator[str]:
    """Server-sent events: the text as the worker hears it (with progress as SSE comments), then the rest."""
    meta: dict[str, Any] = {"status": "PENDING"}
    sent = ""  # the text already sent as deltas
    try:
        async for meta in service.watch(job_id):
            progress = meta.get("result") if meta["status"] == "PROGRESS" else None
            if isinstance(progress, dict) and "percent" in progress:
                yield f": progress {progress['percent']}\n\n"
                heard = progress.get("text")
                if isinstance(heard, str) and heard.startswith(sent) and len(heard) > len(sent):
                    yield sse({"type": "transcript.text.delta", "delta": heard[len(sent) :]})
                    sent = heard
    finally:
        if meta["status"] in ENDED_STATES:
            await service.release_upload(job_id, upload.location)
        else:
            service.release_when_done(job_id, upload.location)
    try:
        result = await final_result(service, job_id, meta)
    except ApiError as error:
        yield sse(error.body())
        return
    for event in stream_events(result, sent=sent):
        yield event


@router.post(
    "/v1/audio/transcriptions",
    openapi_extra=_FORM_DOC,
    summary="Transcribe audio (OpenAI-compatible)",
    response_class=Response,
    responses=_AUDIO_ANSWERS,
)
async def transcriptions(service: ServiceDep, upload: UploadDep) -> Response:
    """Transcribe an uploaded file; answers in ``response_format``, or as events with ``stream=true``."""
    return await _transcribe(service, upload, "transcribe")


@router.post(
    "/v1/audio/translations",
    openapi_extra=_FORM_DOC,
    summary="Translate audio into English",
    response_class=Response,
    responses=_AUDIO_ANSWERS,
)
async def translations(service: ServiceDep, upload: UploadDep) -> Response:
    """Translate an uploaded file into English text (needs a multilingual model)."""
    return await _transcribe(service, upload, "translate")


def _model(served_id: str) -> dict[str, Any]:
    return {"id": served_id, "object": "model", "created": 0, "owned_by": "asr-worker"}


@router.get("/v1/models", summary="Models the live workers serve")
async def list_models(service: ServiceDep) -> dict[str, Any]:
    """The models loaded by the workers that answered (``whisper-1`` is an alias of the default queue)."""
    models = await service.models.models()
    data = []
    for served in sorted(models.values(), key=lambda m: m.id):
        entry = _model(served.id)
        entry.update(queues=sorted(served.queues), multilingual=served.multilingual)
        data.append(entry)
    return {"object": "list", "data": data}


@router.get(
    "/v1/models/{model_id}", summary="One model the live workers serve", responses=error_responses(404)
)
async def get_model(model_id: str, service: ServiceDep) -> dict[str, Any]:
    served = (await service.models.models()).get(model_id)
    if served is None:
        raise ApiError(
            404, f"no live worker serves model {model_id!r}", param="model", code="model_not_found"
        )
    return {**_model(served.id), "queues": sorted(served.queues), "multilingual": served.multilingual}
