"""Operations: ``/healthz`` (the process), ``/readyz`` (Redis, a worker on the queue), ``/metrics``."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from producer.api.auth import BEARER, require_key
from producer.api.deps import ServiceDep
from producer.api.errors import SERVER_ERROR, ApiError, error_responses
from producer.api.models import queue_depth
from producer.api.service import Service

__all__ = ["router"]

router = APIRouter()

#: How stale the fleet view behind ``/readyz`` may be (seconds).
READY_MAX_AGE = 5.0


class Readiness(BaseModel):
    """``/readyz``'s answer: ready or not, the default queue, and what each check found."""

    status: str
    queue: str
    checks: dict[str, Any]


@router.get("/healthz", summary="The API process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Redis answers and a live worker consumes the default queue",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready: Redis or the workers are missing"}},
)
async def readyz(service: ServiceDep) -> JSONResponse:
    checks: dict[str, Any] = {}
    try:
        checks["redis"] = bool(await asyncio.wait_for(service.redis.ping(), 2.0))
        consumed = await service.models.consumed(max_age=READY_MAX_AGE)
        checks["workers_on_default_queue"] = service.client.queue in consumed
    except Exception as exc:  # any failure means not ready; say which
        checks["error"] = type(exc).__name__
    ready = checks.get("redis") is True and checks.get("workers_on_default_queue") is True
    body = {"status": "ready" if ready else "not ready", "queue": service.client.queue, "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)


async def _refresh_gauges(service: Service) -> None:
    models = await service.models.models()
    queues = {service.client.queue, *(q for m in models.values() for q in m.queues)}
    service.metrics.workers.set(len(service.models.workers))
    for queue in sorted(queues):
        depth = await anyio.to_thread.run_sync(queue_depth, service.client, queue)
        service.metrics.queue_depth.labels(queue).set(depth)


async def metrics_key(
    request: Request,
    service: ServiceDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
) -> None:
    """The key ``/metrics`` asks for, unless ``ASR_METRICS_PUBLIC`` serves it to anyone."""
    if not service.settings.metrics_public:
        await require_key(request, service, bearer)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    dependencies=[Depends(metrics_key)],
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"},
        **error_responses(401, 503),
    },
)
async def metrics(service: ServiceDep) -> Response:
    try:
        await _refresh_gauges(service)
    except Exception as exc:
        raise ApiError(503, f"cannot read the fleet: {type(exc).__name__}", type=SERVER_ERROR) from None
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)
