"""What FastAPI's dependencies hand the handlers: the service and the request's upload.

The service is built when the server starts (``app.py``'s lifespan) and read here
alone; a handler names what it needs in its signature (``service: ServiceDep``,
``upload: UploadDep``), as FastAPI's "bigger applications" layout does.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from producer.api.service import Service
from producer.api.uploads import Upload, receive_upload

__all__ = ["ServiceDep", "UploadDep", "audio_upload", "get_service", "job_upload"]


def get_service(request: Request) -> Service:
    """The application's :class:`Service` (its settings, the producer client, Redis)."""
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


async def audio_upload(request: Request, service: ServiceDep) -> Upload:
    """The request's multipart form, its file streamed to ``ASR_UPLOAD_URL`` (at most the size limit).

    Raises:
        ApiError: 415 not multipart, 413 too large, 400 malformed or no file.
    """
    return await receive_upload(
        request.headers.get("content-type"),
        request.headers.get("content-length"),
        request.stream(),
        target=service.settings.uploads,
        max_bytes=service.settings.max_upload_bytes,
    )


UploadDep = Annotated[Upload, Depends(audio_upload)]


async def job_upload(request: Request, service: ServiceDep) -> Upload | None:
    """A job's uploaded file, or None when the body is JSON (it names the audio instead)."""
    if request.headers.get("content-type", "").startswith("application/json"):
        return None
    return await audio_upload(request, service)
