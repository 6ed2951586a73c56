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
import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

__all__ = ["UPLOAD_URL_ENV", "is_url", "job_location", "upload"]

UPLOAD_URL_ENV = "ASR_UPLOAD_URL"
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a URL (``s3://``, ``https://``): passed to the workers as it is."""
    return isinstance(path, str) and bool(_URL.match(path))


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
    target = (target or os.environ.get(UPLOAD_URL_ENV, "")).strip()
    if not target:
        raise ValueError(f"--upload needs {UPLOAD_URL_ENV} (an s3:// prefix or a shared directory)")
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"not a file: {source}")
    folder = _digest(source)
    if target.lower().startswith("s3://"):
        parts = urlsplit(target)
        prefix = parts.path.strip("/")
        key = "/".join(p for p in (prefix, folder, source.name) if p)
        _s3_client().upload_file(str(source), parts.netloc, key)
        return f"s3://{parts.netloc}/{quote(key)}"
    if not os.path.isabs(target):
        raise ValueError(f"{UPLOAD_URL_ENV}={target!r} is neither an s3:// prefix nor an absolute directory")
    destination = Path(target) / folder / source.name
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, destination)
    return str(destination)


def _s3_client() -> Any:
    import boto3

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    return boto3.session.Session().client("s3", region_name=region)
