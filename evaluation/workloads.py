"""The harness's inputs, built from real speech: many short clips, and long files.

Short clips are the recordings themselves (``../shared/audio``, else
``samples/``) repeated. Long files mix every recording, decoded to 16 kHz mono
(a stereo file with two different speakers gives its two channels as two pieces), in a seeded random
order with 1 s of silence after each piece; they are cached in ``bench/.cache``.
"""

from __future__ import annotations

import random
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

__all__ = [
    "CACHE_DIR",
    "Workload",
    "duration",
    "long_files",
    "prime_page_cache",
    "referenced_mix",
    "short_clips",
    "source_clips",
]

ROOT = Path(__file__).resolve().parent.parent
#: Where built long files are kept between runs (git-ignored).
CACHE_DIR = ROOT / "bench" / ".cache"
SAMPLE_RATE = 16000
AUDIO_SUFFIXES = {".flac", ".wav", ".mp3"}
#: Silence after each piece of speech in a long file, in seconds.
PAUSE = 1.0
#: Bump when the way long files are built changes, so cached copies are rebuilt.
BUILD_VERSION = 2


@dataclass(frozen=True)
class Workload:
    """Files to transcribe, their durations, and how they were made."""

    name: str
    description: str
    paths: tuple[Path, ...]
    seconds: tuple[float, ...]  #: duration of each file

    @property
    def audio_seconds(self) -> float:
        return sum(self.seconds)

    def longest_first(self) -> list[Path]:
        """The files, longest first."""
        return [p for _, p in sorted(zip(self.seconds, self.paths, strict=True), key=lambda x: -x[0])]

    def to_json(self) -> dict[str, object]:
        return {
            "description": self.description,
            "files": [str(p) for p in self.paths],
            "audio_seconds": round(self.audio_seconds, 2),
        }


def source_clips() -> list[Path]:
    """The real recordings: ``../shared/audio``, else ``samples/``."""
    for folder in (ROOT.parent / "shared" / "audio", ROOT / "samples"):
        found = sorted(p for p in folder.glob("*") if p.suffix in AUDIO_SUFFIXES)
        if found:
            return found
    raise SystemExit("no audio found in ../shared/audio or samples/")


@cache
def duration(path: Path) -> float:
    """Seconds of audio in ``path`` once decoded to 16 kHz (what the models see)."""
    from faster_whisper.audio import decode_audio

    return len(decode_audio(str(path), sampling_rate=SAMPLE_RATE)) / SAMPLE_RATE


def short_clips(count: int) -> Workload:
    """``count`` clips: the recordings in turn, repeated (the same files, one job each)."""
    clips = source_clips()
    paths = tuple(clips[i % len(clips)] for i in range(count))
    names = ", ".join(f"{p.name} ({duration(p):.1f} s)" for p in clips)
    return Workload(
        name="short",
        description=f"{count} short clips: the real recordings {names} in turn, repeated",
        paths=paths,
        seconds=tuple(duration(p) for p in paths),
    )


def speech_pieces() -> list[tuple[str, np.ndarray]]:
    """Each recording as 16 kHz mono float32; a true stereo file as its left and right channels.

    Some "stereo" recordings carry the same speech on both channels (jfk.flac,
    hotwords.mp3): those are mixed down, so no piece of speech comes twice.
    """
    import av
    from faster_whisper.audio import decode_audio

    pieces = []
    for path in source_clips():
        with av.open(str(path)) as container:
            channels = container.streams.audio[0].codec_context.channels
        if channels == 2:
            left, right = decode_audio(str(path), sampling_rate=SAMPLE_RATE, split_stereo=True)
            if float(np.corrcoef(left, right)[0, 1]) < 0.9:
                pieces += [(f"{path.name} left", left), (f"{path.name} right", right)]
                continue
        pieces.append((path.name, decode_audio(str(path), sampling_rate=SAMPLE_RATE)))
    return pieces


def _pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def build_long(minutes: float, target: Path) -> Path:
    """Write ``minutes`` of mixed real speech with pauses to ``target`` (16 kHz mono 16-bit WAV).

    Pieces come in a random order (seeded by the length, so a rebuild is identical),
    each followed by :data:`PAUSE` s of silence; the end is padded with silence.
    """
    pieces = [audio for _, audio in speech_pieces()]
    rng = random.Random(f"long-{minutes}")
    total = int(minutes * 60 * SAMPLE_RATE)
    pause = np.zeros(int(PAUSE * SAMPLE_RATE), dtype=np.float32)
    written = 0
    partial = target.with_suffix(".partial")
    with wave.open(str(partial), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        while True:
            order = rng.sample(pieces, len(pieces))
            for piece in order:
                if written + len(piece) + len(pause) > total:
                    out.writeframes(_pcm16(np.zeros(total - written, dtype=np.float32)))
                    partial.replace(target)
                    return target
                out.writeframes(_pcm16(piece) + _pcm16(pause))
                written += len(piece) + len(pause)


def long_files(minutes: Sequence[float], cache_dir: Path = CACHE_DIR, *, name: str = "long") -> Workload:
    """One WAV per entry of ``minutes``, built once and reused from ``cache_dir``."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for length in minutes:
        target = cache_dir / f"speech_mix_{length:g}min_v{BUILD_VERSION}.wav"
        paths.append(target if target.exists() else build_long(length, target))
    names = ", ".join(name for name, _ in speech_pieces())
    lengths = " and ".join(f"{m:g}-minute" for m in minutes)
    return Workload(
        name=name,
        description=(
            f"{lengths} WAV (16 kHz mono): real speech ({names}) in a seeded random order, "
            f"{PAUSE:g} s of silence after each piece; cached in {cache_dir}"
        ),
        paths=tuple(paths),
        seconds=tuple(float(m) * 60 for m in minutes),
    )


def prime_page_cache(workloads: Sequence[Workload]) -> None:
    """Read every file once, so the first configuration does not pay for cold disk reads."""
    for path in {p for w in workloads for p in w.paths}:
        path.read_bytes()


def _find(name: str) -> Path:
    for folder in (ROOT.parent / "shared" / "audio", ROOT / "samples", ROOT / "tests" / "data"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(name)


def referenced_pieces() -> list[tuple[np.ndarray, str]]:
    """Real speech whose words are known: jfk.flac and both channels of stereo_diarization.wav."""
    import json

    from faster_whisper.audio import decode_audio

    refs_path = ROOT.parent / "shared" / "audio" / "references.json"
    if not refs_path.is_file():
        refs_path = ROOT / "tests" / "data" / "references.json"
    refs = json.loads(refs_path.read_text())
    stereo = str(_find("stereo_diarization.wav"))
    left, right = decode_audio(stereo, sampling_rate=SAMPLE_RATE, split_stereo=True)
    return [
        (decode_audio(str(_find("jfk.flac")), sampling_rate=SAMPLE_RATE), refs["jfk.flac"]["text"]),
        (left, refs["stereo_diarization.wav"]["left"]),
        (right, refs["stereo_diarization.wav"]["right"]),
    ]


def referenced_mix(seconds: float, target: Path, *, seed: int = 1) -> str:
    """Write about ``seconds`` of real speech with known words to ``target``; return those words.

    The pieces of :func:`referenced_pieces` come in a seeded random order, each
    followed by :data:`PAUSE` s of silence, until ``seconds`` are reached.
    """
    pieces = referenced_pieces()
    rng = random.Random(seed)
    pause = np.zeros(int(PAUSE * SAMPLE_RATE), dtype=np.float32)
    audio: list[np.ndarray] = []
    words: list[str] = []
    written = 0
    while written < seconds * SAMPLE_RATE:
        for piece, text in rng.sample(pieces, len(pieces)):
            audio += [piece, pause]
            words.append(text)
            written += len(piece) + len(pause)
    with wave.open(str(target), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(_pcm16(np.concatenate(audio)))
    return " ".join(words)
