"""The HTTP API in front of the fleet: OpenAI-compatible transcriptions and a jobs API.

Run it with ``uvicorn producer.api:app`` or ``python -m producer.api`` (docs/api.md).
Like the rest of ``producer``, it never imports ``worker``.
"""

from __future__ import annotations

from producer.api.app import create_app

__all__ = ["app", "create_app"]

app = create_app()
