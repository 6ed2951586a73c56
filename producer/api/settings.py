"""The HTTP API's settings, read from the environment once, at start.

A bad value stops the service with the variable's name in the message
(:class:`ApiConfigError`), like the worker's settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from producer.api.storage import UploadTarget

__all__ = ["ApiConfigError", "ApiSettings"]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


class ApiConfigError(ValueError):
    """An ``ASR_API_*`` variable (or ``ASR_UPLOAD_URL``) cannot work."""


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ApiConfigError(f"{name}={raw!r} must be true or false")


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0) -> float:
    raw = env.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ApiConfigError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise ApiConfigError(f"{name}={raw!r} must be at least {minimum:g}")
    return value


def _upload_target(raw: str) -> UploadTarget:
    """``ASR_UPLOAD_URL``: an ``s3://bucket/prefix/``, a directory or a ``file://`` URL."""
    if not raw:
        raise ApiConfigError(
            "ASR_UPLOAD_URL is not set: name an s3://bucket/prefix/ or a directory the workers share"
        )
    parsed = urlparse(raw)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ApiConfigError(f"ASR_UPLOAD_URL={raw!r} names no bucket (s3://bucket/prefix/)")
        return UploadTarget(raw)
    if parsed.scheme not in ("", "file"):
        raise ApiConfigError(
            f"ASR_UPLOAD_URL: scheme {parsed.scheme!r} is not supported; use s3:// or a shared directory"
        )
    path = Path(unquote(parsed.path) if parsed.scheme else raw)
    if not path.is_absolute():
        raise ApiConfigError(
            f"ASR_UPLOAD_URL={raw!r} must be an absolute path (workers do not share our cwd)"
        )
    if not path.is_dir() or not os.access(path, os.W_OK):
        raise ApiConfigError(f"ASR_UPLOAD_URL={raw!r} is not a writable directory")
    return UploadTarget(str(path))


@dataclass(frozen=True)
class ApiSettings:
    """Everything the API reads from the environment."""

    #: ``ASR_API_KEYS``: comma-separated bearer keys; any one is accepted.
    api_keys: tuple[str, ...]
    #: ``ASR_API_AUTH=none``: serve without keys, on purpose (a trusted network only).
    auth_disabled: bool
    #: ``ASR_UPLOAD_URL``: where uploads stream to, an ``s3://`` prefix or a directory the workers share.
    uploads: UploadTarget
    #: ``ASR_API_MAX_UPLOAD_BYTES``: a larger upload is refused with 413 while it streams (default 1 GiB).
    max_upload_bytes: int
    #: ``ASR_API_KEEP_UPLOADS``: keep uploaded files after their job ends (default: removed).
    keep_uploads: bool
    #: ``ASR_API_WAIT_SECONDS``: how long a synchronous transcription waits before 504 (the job goes on).
    wait_seconds: float
    #: ``ASR_METRICS_PUBLIC``: serve ``/metrics`` without a key.
    metrics_public: bool

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ApiSettings:
        """Read and check the settings.

        Raises:
            ApiConfigError: a value cannot work, or no key is set without ``ASR_API_AUTH=none``.
        """
        env = os.environ if env is None else env
        keys = tuple(k.strip() for k in env.get("ASR_API_KEYS", "").split(",") if k.strip())
        auth = env.get("ASR_API_AUTH", "").strip().lower()
        if auth not in ("", "key", "none"):
            raise ApiConfigError(f"ASR_API_AUTH={auth!r} must be 'key' (the default) or 'none'")
        if not keys and auth != "none":
            raise ApiConfigError(
                "no API key configured: set ASR_API_KEYS (comma-separated), "
                "or ASR_API_AUTH=none to serve without authentication on purpose"
            )
        return cls(
            api_keys=keys,
            auth_disabled=auth == "none",
            uploads=_upload_target(env.get("ASR_UPLOAD_URL", "").strip()),
            max_upload_bytes=int(_number(env, "ASR_API_MAX_UPLOAD_BYTES", 1 << 30, minimum=1)),
            keep_uploads=_bool(env, "ASR_API_KEEP_UPLOADS"),
            wait_seconds=_number(env, "ASR_API_WAIT_SECONDS", 3600.0, minimum=1),
            metrics_public=_bool(env, "ASR_METRICS_PUBLIC"),
        )
