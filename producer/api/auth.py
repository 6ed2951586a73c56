"""Bearer API keys: compared in constant time, never logged, never echoed."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from producer.api.deps import ServiceDep
from producer.api.errors import ApiError
from producer.api.uploads import drain

__all__ = ["check_bearer", "require_key"]

#: Declares the bearer key in the OpenAPI document; the key itself is checked by :func:`require_key`.
BEARER = HTTPBearer(auto_error=False, description="one of ASR_API_KEYS")


def check_bearer(authorization: str | None, keys: Sequence[str]) -> bool:
    """Whether an ``Authorization`` header carries one of ``keys`` as a bearer token.

    Every key is compared, each in constant time (``hmac.compare_digest``), so the
    time taken tells nothing about which key, or how much of one, matched.
    """
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return False
    given = token.strip().encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key.encode())
    return matched


def _refuse(authorization: str | None) -> ApiError:
    message = (
        "Incorrect API key provided."
        if authorization
        else "You didn't provide an API key: send it as 'Authorization: Bearer KEY'."
    )
    return ApiError(
        401,
        message,
        code="invalid_api_key",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def require_key(
    request: Request,
    service: ServiceDep,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
) -> None:
    """FastAPI dependency: refuse a request without a valid key (unless ``ASR_API_AUTH=none``)."""
    settings = service.settings
    if settings.auth_disabled:
        return
    authorization = request.headers.get("authorization")
    if not check_bearer(authorization, settings.api_keys):
        await drain(request.stream())
        raise _refuse(authorization)
