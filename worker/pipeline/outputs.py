"""Write a finished transcript where the job (or ``ASR_OUTPUT_URL``) says: one object per format.

The target is an ``s3://bucket/prefix/`` or a directory the worker sees. Each
format is written as ``<target>/<name>.<format>``, ``<name>`` being the audio's
file name without its extension (``call.wav`` -> ``call.json``); a later job on
the same audio and target replaces them. The formats are rendered by
:mod:`asr_protocol.formats`, the renderers the CLI uses.
"""

from __future__ import annotations

import logging
import os
import posixpath
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from asr_protocol.formats import render
from worker.pipeline.errors import ASRError, InvalidOptionsError, TransientError
from worker.pipeline.settings import Settings
from worker.pipeline.urls import mask_url, split_bucket

__all__ = ["output_name", "write_outputs"]

log = logging.getLogger(__name__)

_CONTENT_TYPES = {
    "json": "application/json",
    "txt": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "tsv": "text/tab-separated-values; charset=utf-8",
}


def output_name(audio_path: str) -> str:
    """The audio's file name without its extension (``s3://b/calls/a.wav?sig`` -> ``a``)."""
    path = unquote(urlsplit(audio_path).path) if "://" in audio_path else audio_path
    stem = posixpath.splitext(posixpath.basename(path.rstrip("/")))[0]
    return stem.strip(". ") or "audio"


def write_outputs(result: Any, target: str, formats: Sequence[str], settings: Settings) -> dict[str, str]:
    """Render ``result`` in each format and write it under ``target``; returns ``{format: url}``.

    Raises:
        TransientError: the store or the directory could not be written (a retry may succeed).
        InvalidOptionsError: the store refused the write (no such bucket, access denied).
    """
    name = output_name(result["audio_path"])
    written = {}
    for fmt in formats:
        body = render(result, fmt).encode()
        if target.startswith("s3://"):
            written[fmt] = _put_s3(f"{target}{name}.{fmt}", body, _CONTENT_TYPES[fmt], settings)
        else:
            written[fmt] = _put_file(Path(target) / f"{name}.{fmt}", body)
    log.info(
        "%s: transcript written as %s under %s", mask_url(result["audio_path"]), ", ".join(written), target
    )
    return written


def _put_s3(url: str, body: bytes, content_type: str, settings: Settings) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    from worker.pipeline.fetch import client_for, raise_s3_error

    bucket, key = split_bucket(url)
    try:
        client_for(settings).put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
    except ClientError as exc:
        try:
            raise_s3_error(exc, url)
        except TransientError:
            raise
        except ASRError as error:  # a missing bucket or a denied write: a retry would not help
            raise InvalidOptionsError(f"option output_url: cannot write the transcript: {error}") from None
    except BotoCoreError as exc:
        raise TransientError(f"cannot write the transcript to {url}: {type(exc).__name__}") from None
    return url


def _put_file(path: Path, body: bytes) -> str:
    """Write atomically: a reader never sees half a transcript."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as file:
            file.write(body)
        os.replace(temporary, path)
    except OSError as exc:
        raise TransientError(f"cannot write the transcript to {path}: {exc}") from None
    return str(path)
