"""Where the producer finds the broker and the result backend.

The same variables as the worker's ``celeryconfig.py``: ``REDIS_URL`` sets
both, ``CELERY_BROKER_URL`` and ``CELERY_RESULT_BACKEND`` override each, and
``ASR_QUEUE`` names the default queue.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from asr_protocol.names import DEFAULT_QUEUE
from asr_protocol.redact import mask_url

__all__ = [
    "DEFAULT_QUEUE",
    "DEFAULT_REDIS_URL",
    "SentinelURL",
    "backend_url",
    "broker_url",
    "default_queue",
    "mask_url",
    "parse_sentinel_url",
    "sentinel_options",
    "visibility_timeout",
]

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
#: The Sentinel master name when ``REDIS_SENTINEL_MASTER`` is not set (Redis's own example name).
DEFAULT_SENTINEL_MASTER = "mymaster"
#: Seconds; the worker's default too (7 h: longer than its hard time limit).
DEFAULT_VISIBILITY_TIMEOUT = 7 * 3600


def _get(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def broker_url(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return _get(env, "CELERY_BROKER_URL") or _get(env, "REDIS_URL") or DEFAULT_REDIS_URL


def backend_url(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return _get(env, "CELERY_RESULT_BACKEND") or _get(env, "REDIS_URL") or DEFAULT_REDIS_URL


def default_queue(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return _get(env, "ASR_QUEUE") or DEFAULT_QUEUE


def visibility_timeout(env: Mapping[str, str] | None = None) -> int:
    """``ASR_VISIBILITY_TIMEOUT``: Redis uses the shortest one any client of a broker sets."""
    env = os.environ if env is None else env
    raw = _get(env, "ASR_VISIBILITY_TIMEOUT")
    return int(float(raw)) if raw else DEFAULT_VISIBILITY_TIMEOUT


def sentinel_options(url: str, env: Mapping[str, str] | None = None) -> dict[str, object]:
    """Transport options a ``sentinel://`` broker or backend URL needs; ``{}`` for other URLs.

    ``REDIS_SENTINEL_MASTER`` names the master the Sentinels watch (default ``mymaster``);
    ``REDIS_SENTINEL_PASSWORD``, when the Sentinels themselves ask for one, goes to
    ``sentinel_kwargs`` (the password in the URL is the Redis servers' own).
    """
    if not url.lower().startswith("sentinel://"):
        return {}
    env = os.environ if env is None else env
    options: dict[str, object] = {
        "master_name": _get(env, "REDIS_SENTINEL_MASTER") or DEFAULT_SENTINEL_MASTER
    }
    password = _get(env, "REDIS_SENTINEL_PASSWORD")
    if password:
        options["sentinel_kwargs"] = {"password": password}
    return options


@dataclass(frozen=True)
class SentinelURL:
    """What a ``sentinel://`` URL says: the Sentinels, and how to talk to the master they name."""

    #: ``(host, port)`` of every Sentinel, in the URL's order.
    sentinels: list[tuple[str, int]]
    #: The master's database number (from the first URL, as Celery reads it).
    db: int = 0
    #: The Redis servers' own credentials (from the first URL); the Sentinels' password is separate.
    username: str | None = None
    password: str | None = None
    #: ``REDIS_SENTINEL_MASTER`` and ``REDIS_SENTINEL_PASSWORD`` (:func:`sentinel_options`).
    master_name: str = DEFAULT_SENTINEL_MASTER
    sentinel_kwargs: dict[str, object] = field(default_factory=dict)


def parse_sentinel_url(url: str, env: Mapping[str, str] | None = None) -> SentinelURL:
    """Read ``sentinel://:pw@host1:26379/0;sentinel://:pw@host2:26380/0`` as Celery and kombu do.

    Raises:
        ValueError: not a ``sentinel://`` URL, or a part of it names no host.
    """
    options = sentinel_options(url, env)
    if not options:
        raise ValueError(f"not a sentinel:// URL: {mask_url(url)}")
    parts = [urlsplit(chunk.strip()) for chunk in url.split(";") if chunk.strip()]
    if any(not part.hostname for part in parts):
        raise ValueError(f"every part of a sentinel:// URL names a host: {mask_url(url)}")
    first = parts[0]
    db = first.path.strip("/")
    kwargs = options.get("sentinel_kwargs")
    return SentinelURL(
        sentinels=[(str(part.hostname), part.port or 26379) for part in parts],
        db=int(db) if db else 0,
        username=unquote(first.username) if first.username else None,
        password=unquote(first.password) if first.password else None,
        master_name=str(options["master_name"]),
        sentinel_kwargs=dict(kwargs) if isinstance(kwargs, dict) else {},
    )
