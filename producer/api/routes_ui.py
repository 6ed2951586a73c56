"""The page for people at ``/``: plain ES modules and CSS from ``static/``, no build step.

The page is a client of the jobs API like any other: it holds no secret, so it is
served without a key, and the key it asks for goes only in ``Authorization`` headers.
Every answer here carries a Content-Security-Policy that allows nothing but this
origin (and ``blob:`` media, the local file played back), so neither an inline script
nor a request to another site can run even if text were ever inserted as markup.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from producer.api.errors import ApiError

__all__ = ["SECURITY_HEADERS", "router"]

STATIC = Path(__file__).resolve().parent / "static"

#: Only this origin: no inline script or style, no other site, no framing, no plugins.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    # A new version of the page is picked up at once; the files are small.
    "Cache-Control": "no-cache",
}
_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}

router = APIRouter(include_in_schema=False)


def _file(name: str) -> FileResponse:
    # Only the files shipped in static/, by their plain names: no path reaches outside it.
    path = STATIC / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise ApiError(404, f"no page file {name!r}", code="not_found")
    media = _TYPES.get(path.suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media, headers=SECURITY_HEADERS)  # text/* gets charset=utf-8


@router.get("/")
async def page() -> FileResponse:
    """The page: upload, follow, read and download transcripts."""
    return _file("index.html")


@router.get("/ui/{name}")
async def page_file(name: str) -> FileResponse:
    """The page's modules, style sheet and icon."""
    return _file(name)
