"""Known speakers on ``/v1/audio/transcriptions``: OpenAI's ``known_speaker_names[]`` and
``known_speaker_references[]`` (audio as data URLs), stored beside the upload for the worker.

The job gets ``known_speakers`` (name -> the stored reference's path or ``s3://`` URL); the
worker reads each like the job's audio and checks its length (2-10 s).
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
from collections.abc import Iterable, Mapping, Sequence

from producer.api.errors import ApiError
from producer.api.storage import UploadTarget, remove_upload

__all__ = ["MAX_KNOWN_SPEAKERS", "known_speakers", "remove_references", "store_references"]

#: OpenAI's limit.
MAX_KNOWN_SPEAKERS = 4
#: A 10 s reference is ~320 kB as 16-bit 16 kHz WAV; this leaves room for 48 kHz stereo.
MAX_REFERENCE_BYTES = 4 * 1024 * 1024
_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?:;[^,;]*)*?;base64,(?P<data>.*)", re.S)
#: File suffixes of the audio types OpenAI accepts (the worker decodes by content; the suffix is for people).
_SUFFIXES = {
    "audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav", "audio/mpeg": ".mp3",
    "audio/mp3": ".mp3", "audio/mp4": ".m4a", "audio/m4a": ".m4a", "audio/x-m4a": ".m4a",
    "audio/webm": ".webm", "audio/ogg": ".ogg", "audio/flac": ".flac", "video/mp4": ".mp4",
    "video/webm": ".webm",
}  # fmt: skip
NAMES, REFERENCES = "known_speaker_names[]", "known_speaker_references[]"


def _values(fields: Mapping[str, Sequence[str]], name: str) -> list[str]:
    return [*fields.get(name, []), *fields.get(name.removesuffix("[]"), [])]


def known_speakers(fields: Mapping[str, Sequence[str]], *, diarized: bool) -> list[tuple[str, bytes, str]]:
    """``(name, audio bytes, file suffix)`` of each known speaker the form gives.

    Raises:
        ApiError: 400 naming the field: counts differ, more than four, an empty name, a
            reference that is not a base64 data URL or is too large, or no ``diarized_json``.
    """
    names, references = _values(fields, NAMES), _values(fields, REFERENCES)
    if not names and not references:
        return []
    if not diarized:
        raise ApiError(400, "known speakers need response_format=diarized_json", param=NAMES)
    if len(names) != len(references):
        raise ApiError(
            400,
            f"{len(names)} known_speaker_names but {len(references)} known_speaker_references",
            param=NAMES,
        )
    if len(names) > MAX_KNOWN_SPEAKERS:
        raise ApiError(400, f"at most {MAX_KNOWN_SPEAKERS} known speakers", param=NAMES)
    out = []
    for name, reference in zip(names, references, strict=True):
        if not name.strip():
            raise ApiError(400, "a known speaker name is empty", param=NAMES)
        match = _DATA_URL.fullmatch(reference.strip())
        if match is None:
            raise ApiError(
                400, f"the reference of {name.strip()!r} is not a base64 data URL", param=REFERENCES
            )
        if len(match["data"]) * 3 // 4 > MAX_REFERENCE_BYTES:
            raise ApiError(
                400,
                f"the reference of {name.strip()!r} is over {MAX_REFERENCE_BYTES} bytes",
                param=REFERENCES,
            )
        try:
            audio = base64.b64decode(match["data"], validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(
                400, f"the reference of {name.strip()!r} is not valid base64", param=REFERENCES
            ) from None
        kind = (match["type"] or "").lower()
        suffix = _SUFFIXES.get(kind) or mimetypes.guess_extension(kind) or ".audio"
        out.append((name.strip(), audio, suffix))
    return out


def store_references(target: UploadTarget, speakers: Sequence[tuple[str, bytes, str]]) -> dict[str, str]:
    """Write each reference under ``ASR_UPLOAD_URL``; name -> where the worker reads it."""
    stored: dict[str, str] = {}
    try:
        for name, audio, suffix in speakers:
            sink = target.open(suffix)
            try:
                sink.write(audio)
                sink.close()
            except BaseException:
                sink.abort()
                raise
            stored[name] = sink.location
    except BaseException:
        remove_references(stored.values())
        raise
    return stored


def remove_references(locations: Iterable[str]) -> None:
    """Remove stored references (each best effort)."""
    for location in list(locations):
        try:
            remove_upload(location)
        except Exception:  # an orphaned reference is small; the answer is about the job
            pass
