"""The producer's environment, read once: where the broker and the result backend are, and more.

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
from asr_protocol.queues import DEFAULT_HARD_TIME_LIMIT, DEFAULT_MAX_DELIVERIES
from asr_protocol.redact import mask_url
from asr_protocol.sentinel import DEFAULT_SENTINEL_MASTER, sentinel_options

__all__ = [
    "DEFAULT_QUEUE",
    "DEFAULT_REDIS_URL",
    "ProducerSettings",
    "SentinelURL",
    "mask_url",
    "parse_sentinel_url",
]

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
#: Seconds; the worker's default too (7 h: longer than its hard time limit).
DEFAULT_VISIBILITY_TIMEOUT = 7 * 3600


@dataclass(frozen=True)
class ProducerSettings:
    """The producer's environment, read once by :meth:`from_env` (the library, the CLI, the API's client)."""

    #: ``CELERY_BROKER_URL``, else ``REDIS_URL``, else Redis on localhost.
    broker_url: str = DEFAULT_REDIS_URL
    #: ``CELERY_RESULT_BACKEND``, else ``REDIS_URL``, else Redis on localhost.
    backend_url: str = DEFAULT_REDIS_URL
    #: ``ASR_QUEUE``: the queue jobs go to.
    queue: str = DEFAULT_QUEUE
    #: ``ASR_VISIBILITY_TIMEOUT`` (s): Redis uses the shortest one any client of a broker sets.
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT
    #: ``REDIS_SENTINEL_MASTER``: the master the Sentinels of a ``sentinel://`` URL watch.
    sentinel_master: str = DEFAULT_SENTINEL_MASTER
    #: ``REDIS_SENTINEL_PASSWORD``: the Sentinels' own password (the URL's is the servers').
    sentinel_password: str = ""
    #: ``ASR_UPLOAD_URL``: where ``--upload`` puts local files (an ``s3://`` prefix or a shared directory).
    upload_url: str = ""
    #: ``REDIS_URL`` as set (empty when not): ``asr --local`` uses it instead of starting its own Redis.
    redis_url: str = ""
    #: ``ASR_MAX_DELIVERIES`` and ``ASR_HARD_TIME_LIMIT`` (s), the workers': a producer that declares
    #: a RabbitMQ job queue first declares it as they would (:func:`asr_protocol.queues.queue_settings`).
    max_deliveries: int = DEFAULT_MAX_DELIVERIES
    hard_time_limit: float = DEFAULT_HARD_TIME_LIMIT

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ProducerSettings:
        """Read the settings from ``env`` (default ``os.environ``).

        Raises:
            ValueError: ``ASR_VISIBILITY_TIMEOUT``, ``ASR_MAX_DELIVERIES`` or ``ASR_HARD_TIME_LIMIT``
                is not a number (the message names it).
        """
        env = os.environ if env is None else env

        def get(name: str) -> str:
            return env.get(name, "").strip()

        def number(name: str, default: float, what: str = "a number") -> float:
            raw = get(name)
            try:
                return float(raw) if raw else default
            except ValueError:
                raise ValueError(f"{name}={raw!r} is not {what}") from None

        redis_url = get("REDIS_URL")
        return cls(
            broker_url=get("CELERY_BROKER_URL") or redis_url or DEFAULT_REDIS_URL,
            backend_url=get("CELERY_RESULT_BACKEND") or redis_url or DEFAULT_REDIS_URL,
            queue=get("ASR_QUEUE") or DEFAULT_QUEUE,
            visibility_timeout=int(
                number("ASR_VISIBILITY_TIMEOUT", DEFAULT_VISIBILITY_TIMEOUT, "a number of seconds")
            ),
            sentinel_master=get("REDIS_SENTINEL_MASTER") or DEFAULT_SENTINEL_MASTER,
            sentinel_password=get("REDIS_SENTINEL_PASSWORD"),
            upload_url=get("ASR_UPLOAD_URL"),
            redis_url=redis_url,
            max_deliveries=int(number("ASR_MAX_DELIVERIES", DEFAULT_MAX_DELIVERIES)),
            hard_time_limit=number("ASR_HARD_TIME_LIMIT", DEFAULT_HARD_TIME_LIMIT),
        )

    def sentinel_options(self, url: str) -> dict[str, object]:
        """Transport options a ``sentinel://`` broker or backend URL needs; ``{}`` for other URLs."""
        return sentinel_options(url, self.sentinel_master, self.sentinel_password)


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
    #: ``REDIS_SENTINEL_MASTER`` and ``REDIS_SENTINEL_PASSWORD`` (:meth:`ProducerSettings.sentinel_options`).
    master_name: str = DEFAULT_SENTINEL_MASTER
    sentinel_kwargs: dict[str, object] = field(default_factory=dict)


def parse_sentinel_url(url: str, settings: ProducerSettings | None = None) -> SentinelURL:
    """Read ``sentinel://:pw@host1:26379/0;sentinel://:pw@host2:26380/0`` as Celery and kombu do.

    Raises:
        ValueError: not a ``sentinel://`` URL, or a part of it names no host.
    """
    options = (settings or ProducerSettings.from_env()).sentinel_options(url)
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
