"""Download one audio URL into a local file: ``s3://`` through boto3, ``http(s)://`` through httpx,
``gs://`` and ``az://`` through their fsspec backends (:mod:`worker.pipeline.cloud`).

Both stream into the file and stop as soon as ``ASR_MAX_FILE_BYTES`` is passed
(a declared length over it is refused before the first byte). Errors are typed
(:mod:`worker.pipeline.errors`): 403 is :class:`AccessDeniedError`, 404
:class:`AudioNotFoundError`, neither is retried; 5xx, 429 and connection errors
are retried here with backoff (``ASR_FETCH_RETRIES``; boto3's own retries for
S3), then raised as :class:`TransientError` for the task's retry policy. No
message names the URL's query string (:func:`worker.pipeline.urls.mask_url`).

An https server's certificate is checked against ``SSL_CERT_FILE`` when it is set
(OpenSSL's variable: a bundle with a private CA, e.g. an in-house MinIO), else
against certifi's bundle as httpx does; one that fails the check is an
:class:`AudioUnreadableError`, not retried. boto3 reads ``AWS_CA_BUNDLE`` for S3.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import ssl
import time
from pathlib import Path
from typing import IO, Any, NoReturn
from urllib.parse import urljoin, urlsplit

from worker.pipeline.cloud import read_object
from worker.pipeline.errors import (
    AccessDeniedError,
    AudioNotFoundError,
    AudioUnreadableError,
    ConfigError,
    FileTooLargeError,
    TransientError,
)
from worker.pipeline.settings import Settings
from worker.pipeline.urls import check_addresses, check_allowed, mask_url, split_bucket

__all__ = ["download", "s3_client"]

log = logging.getLogger(__name__)
# httpx logs every request's full URL at INFO, and httpcore its traffic at DEBUG: a presigned
# URL's signature would land in the worker's log. Our own lines say what was fetched, masked.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)

CHUNK = 1024 * 1024
MAX_REDIRECTS = 5
#: Seconds before the first retry of a failed download; doubled for each later one.
BACKOFF = 0.5


class _Retryable(Exception):
    """A failure worth another try (5xx, 429, a connection error or a timeout)."""


def download(url: str, target: Path, settings: Settings) -> int:
    """Stream ``url`` into the file ``target``; returns the number of bytes written.

    Raises:
        PathNotAllowedError: the URL (or a redirect) is not allowed (:mod:`worker.pipeline.urls`).
        AccessDeniedError, AudioNotFoundError, AudioUnreadableError, FileTooLargeError:
            the object cannot be had; a retry would not help.
        TransientError: the store failed on every try; the task retries later.
    """
    scheme = urlsplit(url).scheme.lower()
    fetch = {"s3": _s3_once, "gs": read_object, "az": read_object}.get(scheme, _http_once)
    # boto3 retries S3 itself (botocore's "standard" mode, ASR_FETCH_RETRIES), gcsfs and adlfs too.
    tries = settings.fetch_retries + 1 if fetch is _http_once else 1
    for attempt in range(tries):
        try:
            with target.open("wb") as file:
                return fetch(url, _Sink(file, url, settings.max_file_bytes), settings)
        except _Retryable as exc:
            if attempt + 1 >= tries:
                raise TransientError(f"cannot fetch {mask_url(url)}: {exc}; will retry") from None
            delay = BACKOFF * 2**attempt
            log.warning(
                "fetching %s failed (%s); try %d of %d in %.1f s",
                mask_url(url),
                exc,
                attempt + 2,
                tries,
                delay,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


class _Sink:
    """A file that refuses to grow past the byte limit."""

    def __init__(self, file: IO[bytes], url: str, limit: int) -> None:
        self.file, self.url, self.limit, self.size = file, url, limit, 0

    def check_length(self, declared: int | None) -> None:
        if declared is not None and self.limit and declared > self.limit:
            raise FileTooLargeError(
                f"{mask_url(self.url)} has {declared} bytes, more than ASR_MAX_FILE_BYTES={self.limit}"
            )

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.limit and self.size > self.limit:
            raise FileTooLargeError(
                f"{mask_url(self.url)} is larger than ASR_MAX_FILE_BYTES={self.limit} (stopped reading)"
            )
        self.file.write(chunk)


def _resolve(url: str) -> list[str]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno in (socket.EAI_AGAIN,):
            raise _Retryable(f"DNS lookup of {parts.hostname} failed for now") from None
        raise AudioNotFoundError(f"{mask_url(url)}: host {parts.hostname} not found") from None
    return [str(info[4][0]) for info in infos]


def _checked(url: str, settings: Settings) -> str:
    """``url`` if policy allows it: its prefix, then the addresses its host resolves to."""
    check_allowed(url, settings.audio_urls)
    check_addresses(url, _resolve(url), settings.audio_urls)
    return url


def _http_once(url: str, sink: _Sink, settings: Settings) -> int:
    import httpx

    timeout = httpx.Timeout(settings.fetch_read_timeout, connect=settings.fetch_connect_timeout)
    current = _checked(url, settings)
    # trust_env=False: a proxy from the environment would connect where the address check never looked.
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False, verify=_tls()) as client:
        for _ in range(MAX_REDIRECTS + 1):
            try:
                with client.stream("GET", current) as response:
                    if response.is_redirect and "location" in response.headers:
                        # Each hop is checked as the first was, before it is requested.
                        current = _checked(urljoin(current, response.headers["location"]), settings)
                        continue
                    _check_status(response.status_code, url)
                    length = response.headers.get("content-length")
                    sink.check_length(int(length) if length and length.isdigit() else None)
                    for chunk in response.iter_bytes(CHUNK):
                        sink.write(chunk)
                    return sink.size
            except httpx.TimeoutException as exc:
                raise _Retryable(f"timed out ({type(exc).__name__})") from None
            except httpx.TransportError as exc:
                if _caused_by(exc, ssl.SSLCertVerificationError):
                    host = urlsplit(current).hostname
                    raise AudioUnreadableError(
                        f"{mask_url(url)}: the TLS certificate of {host} is not trusted "
                        "(SSL_CERT_FILE names the CA bundle the worker trusts)"
                    ) from None
                raise _Retryable(f"connection failed ({type(exc).__name__})") from None
    raise AudioUnreadableError(f"{mask_url(url)}: more than {MAX_REDIRECTS} redirects")


@functools.cache
def _tls() -> ssl.SSLContext:
    """The certificate check of https downloads: ``SSL_CERT_FILE``'s bundle when set, else certifi's."""
    import certifi

    return ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE") or certifi.where())


def _caused_by(exc: BaseException | None, kind: type[BaseException]) -> bool:
    while exc is not None:
        if isinstance(exc, kind):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _check_status(status: int, url: str) -> None:
    if status < 300:
        return
    if status in (401, 403):
        raise AccessDeniedError(f"access denied (HTTP {status}) to {mask_url(url)}")
    if status in (404, 410):
        raise AudioNotFoundError(f"no such object (HTTP {status}): {mask_url(url)}")
    if status == 429 or status >= 500:
        raise _Retryable(f"HTTP {status}")
    raise AudioUnreadableError(f"{mask_url(url)} answered HTTP {status}")


@functools.lru_cache(maxsize=4)
def s3_client(region: str, connect_timeout: float, read_timeout: float, retries: int) -> Any:
    """One boto3 S3 client per process and settings; credentials and endpoint from the AWS environment."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"max_attempts": retries + 1, "mode": "standard"},
    )
    return boto3.session.Session().client("s3", region_name=region or None, config=config)


def client_for(settings: Settings) -> Any:
    return s3_client(
        settings.aws_region,
        settings.fetch_connect_timeout,
        settings.fetch_read_timeout,
        settings.fetch_retries,
    )


def _s3_once(url: str, sink: _Sink, settings: Settings) -> int:
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    check_allowed(url, settings.audio_urls)
    bucket, key = split_bucket(url)
    try:
        response = client_for(settings).get_object(Bucket=bucket, Key=key)
        with contextlib.closing(response["Body"]) as body:  # also when the limit stops the read
            sink.check_length(response.get("ContentLength"))
            for chunk in body.iter_chunks(CHUNK):
                sink.write(chunk)
        return sink.size
    except ClientError as exc:
        raise_s3_error(exc, url)
    except NoCredentialsError:
        raise ConfigError(
            "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a role"
        ) from None
    except BotoCoreError as exc:
        raise _Retryable(f"{type(exc).__name__}") from None
    raise AssertionError("unreachable")


def raise_s3_error(exc: Any, url: str) -> NoReturn:
    """Raise the typed error of a botocore ``ClientError``."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code in ("NoSuchKey", "NoSuchBucket", "404", "NotFound") or status == 404:
        raise AudioNotFoundError(f"no such object ({code or status}): {mask_url(url)}")
    if status in (401, 403) or code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        raise AccessDeniedError(f"access denied ({code or status}) to {mask_url(url)}")
    if status == 429 or status >= 500 or code in ("SlowDown", "Throttling", "RequestTimeout"):
        raise TransientError(f"cannot fetch {mask_url(url)}: {code or status}; will retry")
    raise AudioUnreadableError(f"{mask_url(url)}: {code or status}")
