"""Build longer test inputs from real speech (stated in each test that uses them)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

# Job options that keep the sequential decoder (a temperature ladder turns the batched
# pipeline off): about half as fast, with progress segment by segment. Tests that must catch
# a job while it runs (progress, cancel, kill) ask for it.
SEQUENTIAL = {"temperature": [0.0, 0.2]}


def write_wav(path: Path, audio: np.ndarray, rate: int = 16000) -> Path:
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


def concatenate(source: Path, copies: int, out: Path, *, pause: float = 1.0) -> Path:
    """``copies`` of a real recording, decoded to 16 kHz mono, with ``pause`` s of silence between."""
    from faster_whisper.audio import decode_audio

    speech = decode_audio(str(source), sampling_rate=16000)
    silence = np.zeros(int(pause * 16000), dtype=np.float32)
    parts = []
    for _ in range(copies):
        parts += [speech, silence]
    return write_wav(out, np.concatenate(parts))
