"""Where a job's audio is: a URL as given, a local path made absolute, or a file uploaded first.

``--upload`` (and :func:`upload`) puts a local file under ``ASR_UPLOAD_URL``, an
``s3://bucket/prefix/`` (credentials and ``AWS_ENDPOINT_URL`` from the standard
AWS environment, read by boto3) or a directory every worker sees, so a
producer needs no filesystem shared with the workers. The worker must allow that
prefix (``ASR_AUDIO_URLS``; a directory, ``ASR_AUDIO_ROOTS``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from asr_protocol.redact import is_url
from producer.config import ProducerSettings

__all__ = ["UPLOAD_URL_ENV", "is_url", "job_location", "s3_client", "split_s3_url", "upload"]

UPLOAD_URL_ENV = "ASR_UPLOAD_URL"


def job_location(path: str | os.PathLike[str]) -> str:
    """What a job names: a URL unchanged, a path made absolute (workers do not share our cwd)."""
    if is_url(path):
        return str(path)
    return os.path.abspath(os.fspath(path))


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1024 * 1024), b""):
            sha.update(block)
    return sha.hexdigest()[:16]


def upload(path: str | os.PathLike[str], target: str | None = None) -> str:
    """Put the local file ``path`` under ``target`` (default ``$ASR_UPLOAD_URL``); returns what to submit.

    The copy is named ``<target>/<first 16 hex of its SHA-256>/<file name>``: two files
    of one name never overwrite each other, and the worker's output keeps the name.

    Raises:
        ValueError: no target, or one that is neither ``s3://`` nor an absolute directory.
        FileNotFoundError: ``path`` is not a file.
    """
    target = (target or ProducerSettings.from_env().upload_url).strip()
    if not target:
        raise ValueError(f"--upload needs {UPLOAD_URL_ENV} (an s3:// prefix or a shared directory)")
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"not a file: {source}")
    folder = _digest(source)
    if target.lower().startswith("s3://"):
        bucket, prefix = split_s3_url(target)
        key = "/".join(p for p in (prefix.strip("/"), folder, source.name) if p)
        s3_client().upload_file(str(source), bucket, key)
        return f"s3://{bucket}/{quote(key)}"
    if not os.path.isabs(target):
        raise ValueError(f"{UPLOAD_URL_ENV}={target!r} is neither an s3:// prefix nor an absolute directory")
    destination = Path(target) / folder / source.name
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, destination)
    return str(destination)


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ``("bucket", "some/key")`` (the key unquoted, as :func:`upload` quotes it).

    Raises:
        ValueError: not an ``s3://`` URL naming a bucket.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() != "s3" or not parts.netloc:
        raise ValueError(f"not an s3://bucket/... URL: {url!r}")
    return parts.netloc, unquote(parts.path.lstrip("/"))


def s3_client() -> Any:
    """A boto3 S3 client from the standard AWS environment (credentials, ``AWS_ENDPOINT_URL``, region)."""
    import boto3

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    return boto3.session.Session().client("s3", region_name=region)
