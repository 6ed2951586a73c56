"""The ``asr.detect_language`` task: which language is spoken, from the first 30 s only.

Cheap next to a transcription: only the head of the file is decoded (a long
recording is not read to the end) and the model runs its encoder once.
An English-only model (the default ``tiny.en``) cannot tell languages apart;
it refuses with :class:`InvalidOptionsError` instead of guessing "en".
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from worker.asr import get_model, get_model_config
from worker.audio import SAMPLE_RATE, check_audio_path
from worker.celery import app
from worker.errors import (
    AudioDecodeError,
    InputError,
    InvalidOptionsError,
    ModelUnavailableError,
    TransientError,
)
from worker.settings import get_settings

__all__ = ["HEAD_SECONDS", "decode_head", "detect_language"]

#: Whisper sees 30 s windows; language detection looks at the first one.
HEAD_SECONDS = 30.0
#: How many of the most likely languages the result lists.
TOP = 5


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
    import av

    limit = int(seconds * SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    got = 0
    try:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioDecodeError(f"{path} has no audio stream")
            for frame in _frames(container):
                frame.pts = None
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    got += chunks[-1].size
                if got >= limit:
                    break
            else:
                chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    except AudioDecodeError:
        raise
    except OSError as exc:
        if exc.errno in (errno.EIO, errno.ESTALE, errno.ETIMEDOUT, errno.EAGAIN, errno.EINTR):
            raise TransientError(f"I/O error reading {path} ({exc}); will retry") from None
        raise AudioDecodeError(f"cannot decode {path}: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # PyAV raises many FFmpeg error classes
        raise AudioDecodeError(f"cannot decode {path}: {type(exc).__name__}: {exc}") from None
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return (np.concatenate(chunks)[:limit].astype(np.float32) / 32768.0).astype(np.float32)


@app.task(
    name="asr.detect_language",
    bind=True,
    throws=(InputError,),
    autoretry_for=(TransientError,),
    retry_backoff=True,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
)
def detect_language(self: Any, audio_path: Any) -> dict[str, Any]:
    """Detect the spoken language of ``audio_path`` from its first 30 s.

    Returns:
        ``{"audio_path", "language", "probability", "top": [{"language", "probability"}] * 5,
        "seconds", "model", "worker"}``.

    Raises:
        InvalidOptionsError: the worker's model is English-only.
        InputError: the path or the audio is bad (the same checks as ``asr.transcribe``).
    """
    settings = get_settings()
    if not settings.enable_faster_whisper:
        raise ModelUnavailableError("ASR is disabled on this worker (ENABLE_FASTER_WHISPER=false)")
    path = check_audio_path(audio_path, settings)
    model = get_model()
    if model is None:
        raise ModelUnavailableError("ASR is disabled on this worker")
    if not get_model_config()["multilingual"]:
        raise InvalidOptionsError(
            f"model {settings.model_id} is English-only; language detection needs a multilingual "
            "model (ASR_MODEL_ID=base, small, medium, large-v3, ...)"
        )
    audio = decode_head(path)
    if audio.size == 0:
        raise AudioDecodeError(f"{audio_path} has no audio samples to detect a language from")
    language, probability, ranked = model.detect_language(audio=audio)
    return {
        "audio_path": str(audio_path),
        "language": language,
        "probability": round(float(probability), 4),
        "top": [{"language": code, "probability": round(float(p), 4)} for code, p in ranked[:TOP]],
        "seconds": round(audio.size / SAMPLE_RATE, 3),
        "model": settings.model_id,
        "worker": {"hostname": self.request.hostname, "pid": os.getpid()},
    }
