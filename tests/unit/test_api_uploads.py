"""The streaming multipart receiver: fields, the file part written as it arrives, limits, media checks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from producer.api.errors import ApiError
from producer.api.storage import UploadTarget
from producer.api.uploads import receive_upload

BOUNDARY = "xYzZY"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def _form(
    fields: dict[str, str], filename: str | None, data: bytes, content_type: str = "audio/wav"
) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    if filename is not None:
        head = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                f"Content-Type: {content_type}\r\n\r\n")  # fmt: skip
        parts.append(head.encode() + data + b"\r\n")
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


async def _chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


def _receive(body: bytes, tmp_path: Path, *, size: int = 7, max_bytes: int = 1 << 20, **kwargs: str | None):
    content_type = kwargs.get("content_type", CONTENT_TYPE)
    return asyncio.run(
        receive_upload(
            content_type,
            kwargs.get("length"),
            _chunks(body, size),
            target=UploadTarget(str(tmp_path)),
            max_bytes=max_bytes,
        )
    )


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_fields_and_file_survive_any_chunking(tmp_path: Path, size: int):
    audio = bytes(range(256)) * 40
    body = _form({"model": "whisper-1", "timestamp_granularities[]": "word"}, "talk.FLAC", audio)
    upload = _receive(body, tmp_path, size=size)
    assert upload.get("model") == "whisper-1" and upload.fields["timestamp_granularities[]"] == ["word"]
    path = Path(upload.location)
    assert upload.complete and path.parent == tmp_path and path.suffix == ".flac"
    assert path.read_bytes() == audio and upload.size == len(audio) and upload.filename == "talk.FLAC"


def test_not_audio_is_refused_before_writing(tmp_path: Path):
    with pytest.raises(ApiError) as raised:
        _receive(_form({}, "notes.txt", b"hello", "text/plain"), tmp_path)
    assert raised.value.status == 415 and list(tmp_path.iterdir()) == []
    # An audio content type is enough without a known extension.
    assert _receive(_form({}, "recording", b"RIFF", "audio/x-wav"), tmp_path).size == 4


def test_too_large_stops_while_streaming_and_removes_the_part(tmp_path: Path):
    with pytest.raises(ApiError) as raised:
        _receive(_form({}, "a.wav", b"\0" * 5000), tmp_path, size=1024, max_bytes=4096)
    assert raised.value.status == 413 and list(tmp_path.iterdir()) == []


def test_content_length_over_the_limit_is_refused_first(tmp_path: Path):
    with pytest.raises(ApiError) as raised:
        _receive(_form({}, "a.wav", b"\0" * 10), tmp_path, max_bytes=10, length=str(10 + (2 << 20)))
    assert raised.value.status == 413


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{}", "application/json", 415),
        (_form({"model": "x"}, None, b""), CONTENT_TYPE, 400),  # no file
        (_form({}, "a.wav", b""), CONTENT_TYPE, 400),  # empty file
        (_form({"prompt": "x" * 70000}, "a.wav", b"RIFF"), CONTENT_TYPE, 400),  # a field too long
    ],
)
def test_bad_forms(tmp_path: Path, body: bytes, content_type: str, status: int):
    with pytest.raises(ApiError) as raised:
        _receive(body, tmp_path, size=4096, content_type=content_type)
    assert raised.value.status == status
    assert list(tmp_path.iterdir()) == []
