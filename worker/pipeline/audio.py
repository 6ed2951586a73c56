"""Check an audio path and decode it, turning every failure into an InputError."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from worker.pipeline.errors import (
    AudioDecodeError,
    AudioNotFoundError,
    AudioTooLongError,
    AudioUnreadableError,
    EmptyAudioError,
    FileTooLargeError,
    InvalidOptionsError,
    InvalidPathError,
    NotAFileError,
    PathNotAllowedError,
    TransientError,
)
from worker.pipeline.settings import Settings

__all__ = [
    "HEAD_SECONDS",
    "SAMPLE_RATE",
    "check_audio_path",
    "check_duration",
    "decode",
    "decode_head",
    "decode_tracks",
    "probe_duration",
    "raise_read_error",
]

SAMPLE_RATE = 16000
#: Whisper sees 30 s windows; language detection looks at the first one.
HEAD_SECONDS = 30.0

# Errors of shared storage that pass (an NFS server rebooting, a stale handle):
# worth a retry, unlike a file that is simply not audio.
_TRANSIENT_ERRNOS = frozenset({errno.EIO, errno.ESTALE, errno.ETIMEDOUT, errno.EAGAIN, errno.EINTR})


def raise_read_error(exc: Exception, path: Path, what: str) -> NoReturn:
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        raise TransientError(f"I/O error reading {path} ({exc}); will retry") from None
    raise AudioDecodeError(f"{what} {path}: {type(exc).__name__}: {exc}") from None


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path.is_relative_to(root.resolve()) for root in roots)


def check_audio_path(audio_path: Any, settings: Settings) -> Path:
    """Validate a job's path before anything reads it.

    The path is resolved (symlinks and ``..``) before it is compared with
    ``ASR_AUDIO_ROOTS``, so a link inside a root that points outside is refused.

    Raises:
        InputError: one subclass per way the path can be bad.
    """
    if not isinstance(audio_path, str) or not audio_path.strip():
        raise InvalidPathError(
            f"audio_path must be a non-empty string, not {type(audio_path).__name__} {audio_path!r:.80}"
        )
    if "\x00" in audio_path:
        raise InvalidPathError("audio_path contains a NUL byte")
    path = Path(audio_path)
    if not path.is_absolute():
        raise InvalidPathError(
            "audio_path must be absolute (workers do not share the producer's working directory): "
            f"{audio_path!r}"
        )
    resolved = path.resolve()
    if settings.audio_roots and not _inside(resolved, settings.audio_roots):
        raise PathNotAllowedError(
            f"{audio_path} is outside the directories this worker may read (ASR_AUDIO_ROOTS)"
        )
    if not resolved.exists():
        raise AudioNotFoundError(f"no such file: {audio_path}")
    if not resolved.is_file():
        raise NotAFileError(f"not a regular file: {audio_path}")
    size = resolved.stat().st_size
    if size == 0:
        raise EmptyAudioError(f"empty file (0 bytes): {audio_path}")
    if settings.max_file_bytes and size > settings.max_file_bytes:
        raise FileTooLargeError(
            f"{audio_path} has {size} bytes, more than ASR_MAX_FILE_BYTES={settings.max_file_bytes}"
        )
    if not os.access(resolved, os.R_OK):
        raise AudioUnreadableError(f"permission denied: {audio_path}")
    return resolved


def probe_duration(path: Path) -> float | None:
    """The container's duration in seconds, without decoding; ``None`` if unknown.

    Raises:
        AudioDecodeError: the file is not a media container.
    """
    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioDecodeError(f"{path} has no audio stream")
            if container.duration is not None:
                return container.duration / av.time_base
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            return None
    except AudioDecodeError:
        raise
    except Exception as exc:  # PyAV raises many FFmpeg error classes
        raise_read_error(exc, path, "not readable audio:")


def check_duration(seconds: float | None, path: Path, settings: Settings) -> None:
    """Refuse audio longer than ``ASR_MAX_AUDIO_SECONDS``."""
    if seconds is not None and settings.max_audio_seconds and seconds > settings.max_audio_seconds:
        raise AudioTooLongError(
            f"{path} lasts {seconds:.1f} s, more than ASR_MAX_AUDIO_SECONDS={settings.max_audio_seconds:g}"
        )


def decode(path: Path) -> np.ndarray:
    """Decode to 16 kHz mono float32, as faster-whisper does for a path.

    Raises:
        AudioDecodeError: FFmpeg cannot decode the file.
    """
    from faster_whisper.audio import decode_audio

    try:
        return decode_audio(str(path), sampling_rate=SAMPLE_RATE)
    except Exception as exc:
        raise_read_error(exc, path, "cannot decode")


def _channel_count(path: Path) -> int:
    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            return int(container.streams.audio[0].codec_context.channels)
    except Exception as exc:  # PyAV raises many FFmpeg error classes
        raise_read_error(exc, path, "not readable audio:")


def decode_tracks(
    path: Path, channels: str | Sequence[str] | None
) -> tuple[list[np.ndarray], list[int | str]]:
    """The audio to transcribe: the mixdown, or each channel of a stereo file with its label.

    Args:
        channels: ``None`` (mix down), ``"split"`` (labels 0 and 1) or one name per channel.

    Raises:
        InvalidOptionsError: channels were asked of a file that is not stereo.
    """
    if channels is None:
        return [decode(path)], []
    count = _channel_count(path)
    if count != 2:
        # A mono file mixes every speaker: labelling it "agent" would be wrong, so refuse.
        raise InvalidOptionsError(
            f"option channels needs a 2-channel (stereo) file; {path} has {count} channel(s)"
        )
    from faster_whisper.audio import decode_audio

    try:
        left, right = decode_audio(str(path), sampling_rate=SAMPLE_RATE, split_stereo=True)
    except Exception as exc:
        raise_read_error(exc, path, "cannot decode")
    labels: list[int | str] = [0, 1] if channels == "split" else list(channels)
    return [left, right], labels


def _frames(container: Any) -> Iterator[Any]:
    import av

    frames = container.decode(audio=0)
    while True:
        try:
            yield next(frames)
        except StopIteration:
            return
        except av.error.InvalidDataError:  # a damaged frame: skip it, as faster-whisper does
            continue


def decode_head(path: Path, seconds: float = HEAD_SECONDS) -> np.ndarray:
    """The first ``seconds`` of ``path`` as 16 kHz mono float32, decoding no further.

    Raises:
        AudioDecodeError: FFmpeg cannot decode the file.
        TransientError: shared storage failed with an I/O error worth a retry.
    """
    return decode_range(path, 0.0, seconds)


#: Seconds decoded before a piece's start and dropped, so the decoder has settled.
SEEK_PREROLL = 1.0


def decode_range(path: Path, start: float, end: float) -> np.ndarray:
    """Seconds ``start`` to ``end`` of ``path`` as 16 kHz mono float32, seeking to ``start``.

    A piece of a long file is decoded without decoding what comes before it.
    The samples match :func:`decode`'s ``[start * 16000 : end * 16000]`` to
    within the resampler's few-sample delay, which a cut made in a pause hides.

    Raises:
        AudioDecodeError: FFmpeg cannot decode the file.
        TransientError: shared storage failed with an I/O error worth a retry.
    """
    import av

    first, last = round(start * SAMPLE_RATE), round(end * SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    try:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioDecodeError(f"{path} has no audio stream")
            stream = container.streams.audio[0]
            base = stream.time_base or Fraction(1, SAMPLE_RATE)
            # Timestamps count from the stream's start (an MP3's encoder delay, for one).
            origin = float(stream.start_time * base) if stream.start_time else 0.0
            # Without a seek, samples count from the first decoded one, as in :func:`decode`.
            position: int | None = 0
            if start > SEEK_PREROLL:
                # Seek a little early: lossy decoders (MP3's bit reservoir) need a few
                # frames to settle. It lands on or before that; the frames say where.
                target = origin + start - SEEK_PREROLL
                container.seek(int(target / base), stream=stream, backward=True)
                position = None
            got = 0
            for frame in _frames(container):
                if position is None:
                    at = 0.0 if frame.pts is None else float(frame.pts * (frame.time_base or base)) - origin
                    position = round(at * SAMPLE_RATE)
                frame.pts = None
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    got += chunks[-1].size
                if position + got >= last:
                    break
            else:
                chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    except AudioDecodeError:
        raise
    except Exception as exc:  # PyAV raises many FFmpeg error classes
        raise_read_error(exc, path, "cannot decode")
    if not chunks or position is None:
        return np.zeros(0, dtype=np.float32)
    audio = np.concatenate(chunks)[max(0, first - position) : max(0, last - position)]
    return (audio.astype(np.float32) / 32768.0).astype(np.float32)
