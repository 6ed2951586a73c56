"""Where uploads go: a directory the workers share, or an ``s3://bucket/prefix/`` they read.

An upload is written as it arrives, through a :class:`Sink`: a file in the
directory, or an S3 multipart upload sent :data:`PART_BYTES` at a time (one part
is held in memory, never the file). The job names the upload by its location
(the file's path, or its ``s3://`` URL); :func:`remove_upload` deletes either.
Credentials and ``AWS_ENDPOINT_URL`` come from the standard AWS environment
(:func:`producer.upload.s3_client`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from producer.upload import s3_client, split_s3_url

__all__ = ["PART_BYTES", "Sink", "UploadTarget", "remove_upload"]

#: Bytes per S3 part (S3 wants at least 5 MiB for every part but the last).
PART_BYTES = 8 * 1024 * 1024


class Sink(Protocol):
    """One upload being written; its methods block (call them from a worker thread)."""

    #: What the job is given: a path or an ``s3://`` URL.
    location: str

    def write(self, data: bytes) -> None: ...

    def close(self) -> None:
        """Finish: the upload is complete at :attr:`location`."""

    def abort(self) -> None:
        """Give up: nothing is left at :attr:`location`."""


@dataclass(frozen=True)
class UploadTarget:
    """``ASR_UPLOAD_URL``: an absolute directory or an ``s3://bucket/prefix/``."""

    url: str

    @property
    def is_s3(self) -> bool:
        return self.url.startswith("s3://")

    def open(self, suffix: str) -> Sink:
        """A new upload under a random name ending in ``suffix``; no I/O until the first write."""
        name = f"{uuid.uuid4().hex}{suffix}"
        if self.is_s3:
            bucket, prefix = split_s3_url(self.url)
            return _S3Sink(bucket, f"{prefix.rstrip('/')}/{name}".lstrip("/"))
        return _FileSink(Path(self.url) / name)


class _FileSink:
    def __init__(self, path: Path) -> None:
        self.location = str(path)
        self._file: IO[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self._file is None:
            self._file = open(self.location, "xb")  # closed by close() or abort()
        self._file.write(data)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def abort(self) -> None:
        self.close()
        remove_upload(self.location)


class _S3Sink:
    """An S3 multipart upload; a file smaller than one part is sent with one PUT when it closes."""

    def __init__(self, bucket: str, key: str) -> None:
        self.location = f"s3://{bucket}/{key}"
        self._bucket, self._key = bucket, key
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._buffer = bytearray()

    def write(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= PART_BYTES:
            self._send_part(bytes(self._buffer[:PART_BYTES]))
            del self._buffer[:PART_BYTES]

    def _send_part(self, body: bytes) -> None:
        if self._upload_id is None:
            started = _s3().create_multipart_upload(Bucket=self._bucket, Key=self._key)
            self._upload_id = started["UploadId"]
        number = len(self._parts) + 1
        sent = _s3().upload_part(
            Bucket=self._bucket, Key=self._key, UploadId=self._upload_id, PartNumber=number, Body=body
        )
        self._parts.append({"PartNumber": number, "ETag": sent["ETag"]})

    def close(self) -> None:
        if self._upload_id is None:
            _s3().put_object(Bucket=self._bucket, Key=self._key, Body=bytes(self._buffer))
        else:
            if self._buffer:
                self._send_part(bytes(self._buffer))
            _s3().complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        self._buffer = bytearray()

    def abort(self) -> None:
        self._buffer = bytearray()
        if self._upload_id is not None:
            _s3().abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id)
            self._upload_id = None


@functools.cache
def _s3() -> Any:
    """One client for the process (boto3's clients are thread-safe; creating one takes a while)."""
    return s3_client()


def remove_upload(location: str) -> None:
    """Delete an upload, a file or an S3 object; one already gone is not an error."""
    if location.startswith("s3://"):
        bucket, key = split_s3_url(location)
        _s3().delete_object(Bucket=bucket, Key=key)
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(location)
