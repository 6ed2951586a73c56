"""The ASGI application: ``uvicorn producer.api:app``.

Settings are read when the server starts (the lifespan), not on import: a
missing key (without ``ASR_API_AUTH=none``), a bad upload directory or an
unreachable Redis stops the server with one clear message.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from producer.api import routes_audio, routes_jobs, routes_ops, routes_ui
from producer.api.errors import install_handlers
from producer.api.metrics import MetricsMiddleware
from producer.api.service import Service
from producer.api.settings import ApiSettings

__all__ = ["create_app"]

log = logging.getLogger(__name__)

DESCRIPTION = """OpenAI-compatible transcription (`/v1/audio/*`, `/v1/models`) and a jobs API
(`/v1/jobs`) in front of the asr-worker fleet. Authenticate with `Authorization: Bearer KEY`."""


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = ApiSettings.from_env()
    service = Service(settings)
    await service.start()
    app.state.service = service
    log.info(
        "serving queue %r; uploads to %s (at most %d bytes); auth %s",
        service.client.queue,
        settings.uploads.url,
        settings.max_upload_bytes,
        "disabled (ASR_API_AUTH=none)" if settings.auth_disabled else f"{len(settings.api_keys)} key(s)",
    )
    try:
        yield
    finally:
        await service.close()


def create_app() -> FastAPI:
    """A new application (each one reads the environment when it starts)."""
    app = FastAPI(title="asr-worker API", description=DESCRIPTION, version="1", lifespan=_lifespan)
    install_handlers(app)

    app.add_middleware(MetricsMiddleware)
    app.include_router(routes_audio.router)
    app.include_router(routes_jobs.router)
    app.include_router(routes_ops.router)
    app.include_router(routes_ui.router)
    return app
