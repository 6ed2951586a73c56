"""The eval corpus as items (name, 16 kHz audio, reference), and long files built from it."""

from __future__ import annotations

import json
import random

import numpy as np

from evaluation.scoring import eval_corpus
from evaluation.workloads import _find
from worker.pipeline.audio import SAMPLE_RATE

__all__ = ["PAUSE", "Item", "corpus", "long_mixes", "mix"]

#: Silence after each recording in a long file.
PAUSE = 0.75

Item = tuple[str, np.ndarray, str]  # name, 16 kHz mono audio, reference


def corpus() -> list[Item]:
    """The referenced recordings, one item each."""
    from faster_whisper.audio import decode_audio

    found = {path.name: (path, text) for path, text in eval_corpus().items()}
    refs = json.loads((_find("references.json")).read_text())
    found["jfk.flac"] = (_find("jfk.flac"), refs["jfk.flac"]["text"])
    return [
        (name, decode_audio(str(path), sampling_rate=SAMPLE_RATE), text)
        for name, (path, text) in found.items()
    ]


def mix(name: str, items: list[Item], *, passes: int, pause: float, rng: random.Random) -> Item:
    """``passes`` passes over ``items``, each in a new order drawn from ``rng``; ``pause`` s after each."""
    silence = np.zeros(int(pause * SAMPLE_RATE), dtype=np.float32)
    audio: list[np.ndarray] = []
    words: list[str] = []
    for _ in range(passes):
        for _, clip, text in rng.sample(items, len(items)):
            audio += [clip, silence]
            words.append(text)
    return name, np.concatenate(audio), " ".join(words)


def long_mixes(items: list[Item], repeats: int) -> list[Item]:
    """``eval_mix``: every recording once; ``eval_mix_xN``: N passes, each in a new seeded order."""
    rng = random.Random(0)
    return [
        mix(name, items, passes=passes, pause=PAUSE, rng=rng)
        for name, passes in (("eval_mix", 1), (f"eval_mix_x{repeats}", repeats))
    ]
