"""What a task message shows of its audio: URLs without their query strings.

A presigned URL's query string is its signature: the worker needs it to read the
audio, so the message body carries it, but nothing that is shown or stored about
the message may. Celery writes a message's ``argsrepr``/``kwargsrepr`` into its
headers and its task events (Flower's "args"); :func:`reprs` gives them masked.
The worker masks what it stores in the result backend with the same rule
(``worker/runtime/privacy.py``). ``worker/pipeline/urls.py`` holds the worker's own
copy of :func:`mask_url` for its errors and logs: pure code there imports no
producer (whose package imports Celery), and a unit test keeps the two alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from celery.utils.saferepr import saferepr

from producer.upload import is_url

__all__ = ["MASK", "mask_url", "masked", "reprs"]

MASK = "***"
#: Celery's own limit on ``argsrepr`` and ``kwargsrepr`` (``celery.app.amqp.AMQP``).
REPR_MAXSIZE = 1024


def mask_url(url: str) -> str:
    """``url`` as it may be shown: no query string, fragment, user or password."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<malformed URL>"
    netloc = parts.netloc.rpartition("@")[2]
    masked = f"{parts.scheme}://{netloc}{parts.path}"
    return masked + (f"?{MASK}" if parts.query else "")


def masked(value: Any) -> Any:
    """``value`` with every URL in it (in lists, tuples and dict values too) masked."""
    if isinstance(value, str):
        return mask_url(value) if is_url(value) else value
    if isinstance(value, Mapping):
        return {key: masked(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(masked(item) for item in value)
    return value


def reprs(args: Sequence[Any], kwargs: Mapping[str, Any] | None = None) -> dict[str, str]:
    """``argsrepr`` and ``kwargsrepr`` options for ``send_task``/``apply_async``, URLs masked."""
    return {
        "argsrepr": saferepr(masked(args), REPR_MAXSIZE),
        "kwargsrepr": saferepr(masked(dict(kwargs or {})), REPR_MAXSIZE),
    }
