"""Stream a multipart upload straight to ``ASR_UPLOAD_URL`` (a shared directory or an S3 prefix).

Starlette's own form parser spools files to a local temporary file first; here
the audio part goes chunk by chunk to its :class:`~producer.api.storage.Sink`
(where the workers read it), the size limit is enforced while it streams (413 as
soon as it is passed, the partial upload removed), and a part that is not audio
is refused (415) before any of it is written. The other fields are small text
values, kept in memory.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import anyio.to_thread
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from producer.api.errors import ApiError
from producer.api.storage import Sink, UploadTarget, remove_upload

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

__all__ = ["AUDIO_SUFFIXES", "Upload", "drain", "receive_upload"]

log = logging.getLogger(__name__)

#: What OpenAI accepts, and a few more that FFmpeg decodes as well.
AUDIO_SUFFIXES = frozenset(
    ".flac .m4a .mp3 .mp4 .mpeg .mpga .oga .ogg .opus .wav .webm .aac .aif .aiff .wma .mka .mkv .mov".split()
)
_MEDIA_TYPES = ("audio/", "video/")
#: Form fields are options, not files: each stays small.
MAX_FIELD_BYTES = 64 * 1024
#: Except known speakers' reference recordings (data URLs of 2-10 s of audio, producer/api/references.py).
LARGE_FIELDS = {"known_speaker_references[]": 6 * 1024 * 1024, "known_speaker_references": 6 * 1024 * 1024}
MAX_FIELDS = 64
#: Multipart headers and fields around the file, allowed on top of the file size limit.
FORM_OVERHEAD = 1 << 20
#: Most of a refused body read (and dropped) before answering: a client still sending
#: when the server answers and closes sees a broken connection, not the error.
DRAIN_BYTES = 32 * 1024 * 1024
_SAFE_SUFFIX = re.compile(r"^\.[a-z0-9]{1,8}$")


@dataclass
class Upload:
    """A received form: its text fields and the audio file written to ``ASR_UPLOAD_URL``."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    sink: Sink | None = None
    filename: str | None = None
    size: int = 0
    #: The file is whole at :attr:`location` (its sink was closed).
    complete: bool = False

    @property
    def location(self) -> str:
        """What the job is given: the file's path or its ``s3://`` URL."""
        assert self.sink is not None, "no file was received"
        return self.sink.location

    def get(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[-1] if values else None

    async def discard(self) -> None:
        """Remove what was written: a partial upload, or a whole one no job was submitted for."""
        if self.sink is None:
            return
        undo = functools.partial(remove_upload, self.sink.location) if self.complete else self.sink.abort
        with anyio.CancelScope(shield=True):  # also when the request was cancelled
            try:
                await anyio.to_thread.run_sync(undo)
            except Exception:  # the answer is about the request, not this clean-up
                log.exception("could not remove the upload %s", self.sink.location)


def _is_audio(filename: str, content_type: str) -> bool:
    if Path(filename).suffix.lower() in AUDIO_SUFFIXES:
        return True
    return content_type.lower().startswith(_MEDIA_TYPES)


class _Receiver:
    """python-multipart callbacks: headers and fields in memory, file data queued for writing."""

    def __init__(self, target: UploadTarget, max_bytes: int, file_field: str) -> None:
        self.upload = Upload()
        self._target, self._max, self._file_field = target, max_bytes, file_field
        self._headers: dict[bytes, bytes] = {}
        self._header_name = self._header_value = b""
        self._name: str | None = None
        self._is_file = False
        self._value = bytearray()
        self.pending: list[bytes] = []

    def on_part_begin(self) -> None:
        self._headers, self._name, self._is_file, self._value = {}, None, False, bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_name.strip().lower()] = self._header_value.strip()
        self._header_name = self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in options:
            if sum(len(v) for v in self.upload.fields.values()) >= MAX_FIELDS:
                raise ApiError(400, f"too many form fields (at most {MAX_FIELDS})")
            return
        filename = options[b"filename"].decode("utf-8", "replace")
        if self._name != self._file_field or self.upload.sink is not None:
            raise ApiError(
                400,
                f"unexpected file field {self._name!r}; send one file as {self._file_field!r}",
                param=self._name,
            )
        content_type = self._headers.get(b"content-type", b"").decode("latin-1")
        if not _is_audio(filename, content_type):
            raise ApiError(
                415,
                f"{filename!r} ({content_type or 'no content type'}) is not an audio or video file; "
                f"send one of {', '.join(sorted(AUDIO_SUFFIXES))}",
                param=self._file_field,
                code="unsupported_media_type",
            )
        suffix = Path(filename).suffix.lower()
        self.upload.sink = self._target.open(suffix if _SAFE_SUFFIX.match(suffix) else "")
        self.upload.filename, self._is_file = filename, True

    async def flush(self) -> None:
        """Write the file data the parser has handed over (in a thread: the sink blocks)."""
        if self.pending and self.upload.sink is not None:
            data, self.pending = b"".join(self.pending), []
            await anyio.to_thread.run_sync(self.upload.sink.write, data)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            self.upload.size += end - start
            if self.upload.size > self._max:
                raise ApiError(
                    413,
                    f"the file is larger than this service accepts ({self._max} bytes)",
                    param=self._file_field,
                    code="file_too_large",
                )
            self.pending.append(data[start:end])
            return
        limit = LARGE_FIELDS.get(self._name or "", MAX_FIELD_BYTES)
        if len(self._value) + end - start > limit:
            raise ApiError(400, f"form field {self._name!r} is longer than {limit} bytes", param=self._name)
        self._value += data[start:end]

    def on_part_end(self) -> None:
        if not self._is_file and self._name is not None:
            value = self._value.decode("utf-8", "replace")
            self.upload.fields.setdefault(self._name, []).append(value)


async def receive_upload(
    content_type: str | None,
    content_length: str | None,
    stream: AsyncIterator[bytes],
    *,
    target: UploadTarget,
    max_bytes: int,
    file_field: str = "file",
) -> Upload:
    """Read a ``multipart/form-data`` body, writing its one file part under ``target``.

    Raises:
        ApiError: 415 not a multipart form or not audio, 413 too large, 400 a malformed form.
    """
    kind, params = parse_options_header(content_type or "")
    if kind != b"multipart/form-data" or b"boundary" not in params:
        await drain(stream)
        raise ApiError(415, "send the audio as multipart/form-data", code="unsupported_media_type")
    if content_length and content_length.isdigit() and int(content_length) > max_bytes + FORM_OVERHEAD:
        await drain(stream)
        raise ApiError(
            413,
            f"the request is larger than this service accepts ({max_bytes} bytes of audio)",
            code="file_too_large",
        )
    receiver = _Receiver(target, max_bytes, file_field)
    upload = receiver.upload
    parser = MultipartParser(params[b"boundary"], callbacks=vars_of(receiver))
    try:
        async for chunk in stream:
            parser.write(chunk)
            await receiver.flush()
        parser.finalize()
        await receiver.flush()
        if upload.sink is None:
            raise ApiError(400, f"no file: send the audio as the form field {file_field!r}", param=file_field)
        if upload.size == 0:
            raise ApiError(400, "the uploaded file is empty", param=file_field, code="invalid_audio")
        await anyio.to_thread.run_sync(upload.sink.close)
        upload.complete = True
    except FormParserError as exc:
        await upload.discard()
        raise ApiError(400, f"malformed multipart form: {exc}") from None
    except ApiError:
        await upload.discard()
        await drain(stream)
        raise
    except BaseException:
        await upload.discard()
        raise
    return upload


def vars_of(receiver: _Receiver) -> MultipartCallbacks:
    """The receiver's methods as python-multipart's callbacks dict."""
    return {
        "on_part_begin": receiver.on_part_begin,
        "on_part_data": receiver.on_part_data,
        "on_part_end": receiver.on_part_end,
        "on_header_field": receiver.on_header_field,
        "on_header_value": receiver.on_header_value,
        "on_header_end": receiver.on_header_end,
        "on_headers_finished": receiver.on_headers_finished,
    }


async def drain(stream: AsyncIterator[bytes], limit: int = DRAIN_BYTES) -> None:
    """Read and drop up to ``limit`` bytes of a body that is refused, so its sender reads the answer."""
    dropped = 0
    with contextlib.suppress(Exception):
        async for chunk in stream:
            dropped += len(chunk)
            if dropped > limit:
                return
