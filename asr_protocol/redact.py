"""URLs as they may be shown: no query string (a presigned URL's signature), no user or password.

A presigned URL's query string is its signature: the worker needs it to read the
audio, so the message body carries it, but nothing that is shown or stored about
the message may. Celery writes a message's ``argsrepr``/``kwargsrepr`` into its
headers and its task events (Flower's "args"); :func:`reprs` gives them masked.
The worker masks what it stores in the result backend with the same rule
(``worker/runtime/privacy.py``), and every log line and error that names a URL
(audio, outputs, the broker's) goes through :func:`mask_url` or :func:`mask_text`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

__all__ = ["MASK", "is_url", "mask_text", "mask_url", "masked", "reprs"]

MASK = "***"
#: Celery's own limit on ``argsrepr`` and ``kwargsrepr`` (``celery.app.amqp.AMQP``).
REPR_MAXSIZE = 1024

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: A URL inside free text (an exception's message): up to a space, a quote or a bracket.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()\[\]{},]+")


def is_url(path: str | os.PathLike[str] | object) -> bool:
    """Whether ``path`` is a URL (``scheme://...``) rather than a file path."""
    return isinstance(path, str) and bool(_URL.match(path.strip()))


def mask_url(url: str) -> str:
    """``url`` as it may be shown: no query string, fragment, user or password.

    A ``;``-separated list of URLs (a ``sentinel://`` broker URL) is masked URL by URL.
    """
    parts = url.split(";")
    if len(parts) > 1 and all(is_url(part) for part in parts):
        return ";".join(mask_url(part.strip()) for part in parts)
    try:
        split = urlsplit(url)
    except ValueError:
        return "<malformed URL>"
    netloc = split.netloc.rpartition("@")[2]
    shown = f"{split.scheme}://{netloc}{split.path}"
    return shown + (f"?{MASK}" if split.query else "")


def mask_text(text: str) -> str:
    """``text`` with every URL in it masked (for messages of errors raised by other libraries)."""
    return _URL_IN_TEXT.sub(lambda match: mask_url(match.group()), text)


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
    # Imported here: the worker's pure pipeline code masks URLs with this module and never loads Celery.
    from celery.utils.saferepr import saferepr

    return {
        "argsrepr": saferepr(masked(args), REPR_MAXSIZE),
        "kwargsrepr": saferepr(masked(dict(kwargs or {})), REPR_MAXSIZE),
    }
