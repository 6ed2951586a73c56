"""Redis Sentinel: the transport options a ``sentinel://`` broker or backend URL needs.

Workers (``celeryconfig.py``) and producers (``producer.config``) pass the same ones to
kombu and Celery's Redis backend: the master the Sentinels watch, and the Sentinels' own
password (a URL's password is the Redis servers').
"""

from __future__ import annotations

__all__ = ["DEFAULT_SENTINEL_MASTER", "is_sentinel", "sentinel_options"]

#: The master name when ``REDIS_SENTINEL_MASTER`` is not set (Redis's own example name).
DEFAULT_SENTINEL_MASTER = "mymaster"


def is_sentinel(url: str) -> bool:
    """True for ``sentinel://host:26379;sentinel://host2:26379;...`` URLs, as Celery documents them."""
    return url.lower().startswith("sentinel://")


def sentinel_options(url: str, master_name: str, password: str = "") -> dict[str, object]:
    """``master_name`` (and ``sentinel_kwargs`` with ``password``) for a ``sentinel://`` URL; ``{}`` else."""
    if not is_sentinel(url):
        return {}
    options: dict[str, object] = {"master_name": master_name}
    if password:
        options["sentinel_kwargs"] = {"password": password}
    return options
