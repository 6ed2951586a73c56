"""Read ``gs://`` and ``az://`` objects through their fsspec backends (gcsfs, adlfs).

Both are optional (``requirements-cloud.txt``): :mod:`worker.pipeline.urls` refuses
their URLs on a worker without the package. Credentials come from each SDK's own
environment, never from a message:

* ``gs://bucket/key``: Google's application default credentials
  (``GOOGLE_APPLICATION_CREDENTIALS``, a workload identity, the metadata server);
  ``STORAGE_EMULATOR_HOST`` points gcsfs at an emulator.
* ``az://container/blob``: ``AZURE_STORAGE_CONNECTION_STRING``, or
  ``AZURE_STORAGE_ACCOUNT_NAME`` with ``AZURE_STORAGE_ACCOUNT_KEY``/``AZURE_STORAGE_SAS_TOKEN``
  or Azure's default credential chain (a managed identity, ``AZURE_CLIENT_ID``...).

The backends retry 5xx and connection errors themselves; what is left after their
retries is a :class:`TransientError` for the task's retry policy. A missing object is
:class:`AudioNotFoundError`, a refused one :class:`AccessDeniedError`, neither retried.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol
from urllib.parse import urlsplit

from worker.pipeline.errors import (
    AccessDeniedError,
    ASRError,
    AudioNotFoundError,
    AudioUnreadableError,
    ConfigError,
    TransientError,
)
from worker.pipeline.settings import Settings
from worker.pipeline.urls import check_allowed, mask_url, split_bucket

__all__ = ["read_object"]

#: Bytes asked of the store per request: each read is one ranged GET.
BLOCK = 8 * 1024 * 1024


class Sink(Protocol):
    """Where the bytes go (``worker.pipeline.fetch``'s size-limited file)."""

    size: int

    def check_length(self, declared: int | None) -> None: ...

    def write(self, chunk: bytes) -> None: ...


def read_object(url: str, sink: Sink, settings: Settings) -> int:
    """Stream the object ``url`` names into ``sink``; returns the number of bytes written.

    Raises:
        PathNotAllowedError: the URL is under no ``ASR_AUDIO_URLS`` prefix.
        AccessDeniedError, AudioNotFoundError, AudioUnreadableError, FileTooLargeError:
            the object cannot be had; a retry would not help.
        ConfigError: the backend has no usable credentials.
        TransientError: the store failed after the backend's own retries.
    """
    check_allowed(url, settings.audio_urls)
    bucket, key = split_bucket(url)
    scheme = urlsplit(url).scheme.lower()
    try:
        fs = filesystem(scheme, settings.fetch_connect_timeout, settings.fetch_read_timeout)
        with fs.open(f"{bucket}/{key}", "rb", block_size=BLOCK, cache_type="none") as file:
            sink.check_length(getattr(file, "size", None))
            while chunk := file.read(BLOCK):
                sink.write(chunk)
        return sink.size
    except ASRError:
        raise
    except Exception as exc:  # each SDK has its own exception tree: typed_error sorts them
        raise typed_error(exc, url) from None


@functools.lru_cache(maxsize=4)
def filesystem(scheme: str, connect_timeout: float, read_timeout: float) -> Any:
    """One fsspec filesystem per process and scheme, configured by the SDK's environment.

    Cached here, not by fsspec's own instance cache: that one would hand back a
    filesystem built from an earlier environment.
    """
    try:
        if scheme == "gs":
            # The core class: the default one first asks a gRPC control API what kind of
            # bucket it reads (60 s lost per call against a store that lacks it, as
            # emulators do); plain object reads need none of that.
            from gcsfs.core import GCSFileSystem

            return GCSFileSystem(requests_timeout=read_timeout, skip_instance_cache=True)
        if scheme == "az":
            from adlfs import AzureBlobFileSystem

            return AzureBlobFileSystem(
                connection_timeout=connect_timeout, read_timeout=read_timeout, skip_instance_cache=True
            )
    except ValueError as exc:  # adlfs: no account or credentials in the environment
        raise ConfigError(f"{scheme}:// store not configured: {exc}") from None
    raise AssertionError(f"no fsspec backend for {scheme}://")


def typed_error(exc: BaseException, url: str) -> ASRError:
    """The error a job fails with when a gcsfs/adlfs read raised ``exc``."""
    name = type(exc).__name__
    status = getattr(exc, "status_code", None) or getattr(exc, "code", None)
    status = status if isinstance(status, int) else None
    if isinstance(exc, FileNotFoundError) or status == 404 or name == "ResourceNotFoundError":
        return AudioNotFoundError(f"no such object: {mask_url(url)}")
    # gcsfs raises a plain OSError("Forbidden: ...") for a 403.
    denied = isinstance(exc, PermissionError) or str(exc).startswith("Forbidden")
    if denied or status in (401, 403) or name == "ClientAuthenticationError":
        return AccessDeniedError(f"access denied ({status or name}) to {mask_url(url)}")
    if status is not None and 400 <= status < 500 and status not in (408, 429):
        return AudioUnreadableError(f"{mask_url(url)}: HTTP {status}")
    return TransientError(f"cannot fetch {mask_url(url)}: {name}; will retry")
