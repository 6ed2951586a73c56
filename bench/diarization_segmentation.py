"""pyannote's segmentation-3.0 against Silero as diarization's voice activity, chosen on development.

Most of the test split's DER is speech Silero does not hear (docs/diarization.md, Limits).
segmentation-3.0 ships in the same wheel as the worker's speaker model (evaluation.segmentation),
so it could run offline. Three ways, each with the worker's count rules from every window
(nothing is decoded here) on the conversations of bench.diarization_vad (clean, telephone, noisy,
poor microphone):

- ``silero``: the worker's VAD (Silero at ``VAD_THRESHOLD``);
- ``segmentation``: segmentation-3.0's speech instead (pyannote's default onset, 0.5; not tuned);
- ``silero + segmentation stretches``: Silero's, then segmentation-3.0's speech that overlaps no
  turn becomes turns of their nearest speaker, one window each, as the worker does with the
  decoder's words (the count does not change).

Kept: the best on development by bench.diarization's objective (the mean exact-count rate, then the
lower DER), ties to the earlier way. Test and the real AMI and falcon recordings (human RTTM truth)
are scored for all three, side by side. The conversations' truth is Silero's own phrases in the
source recordings (evaluation.speakers.PHRASE_VAD): a VAD that bridges short pauses, as people
annotating do, pays false alarm there; the real recordings do not have that bias.

    python -m bench.diarization_segmentation          # writes bench/results/diarization_segmentation.json
    python -m bench.diarization_segmentation --quick  # one conversation per count: checks the bench runs
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.diarization import SEED, _read, der_figures, objective
from bench.diarization_vad import _show, measure, side_of, turns_with
from evaluation import conversations as built
from evaluation import diarization_eval as ev
from evaluation import segmentation
from evaluation.scoring import EVAL_DIR, ROOT
from evaluation.speakers import rttm_turns

RESULTS = ROOT / "bench" / "results" / "diarization_segmentation.json"
WAYS = ("silero", "segmentation", "silero + segmentation stretches")


def _cached(find: Callable[[np.ndarray], Any]) -> Callable[[np.ndarray], Any]:
    """``find`` run once per distinct audio (the two ways that use it hear the same conversations)."""
    seen: dict[str, Any] = {}

    def run(audio: np.ndarray) -> Any:
        key = hashlib.blake2b(np.ascontiguousarray(audio).tobytes(), digest_size=16).hexdigest()
        if key not in seen:
            seen[key] = find(audio)
        return seen[key]

    return run


def ways() -> dict[str, dict[str, Any]]:
    """Each way's arguments to :func:`bench.diarization_vad.measure`."""
    from worker.pipeline.diarization import speech_regions

    heard = _cached(segmentation.speech_regions)
    return {
        WAYS[0]: {"regions": speech_regions},
        WAYS[1]: {"regions": heard},
        WAYS[2]: {"regions": speech_regions, "added": heard},
    }


def real_files(arguments: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """DER of each way on the real falcon and AMI recordings (RTTM truth, count from every window)."""
    from worker.pipeline.diarization import EVERY_WINDOW_RULES

    method = ev.rule_method(EVERY_WINDOW_RULES)
    out: dict[str, Any] = {}
    for name in ("falcon_3spk", "ami_meeting_4spk"):
        audio = _read(EVAL_DIR / f"{name}.wav")
        truth = rttm_turns(EVAL_DIR / f"{name}.rttm")
        conversation = built.Conversation(name, "real", audio, truth, (), ())
        out[name] = {}
        for way, kwargs in arguments.items():
            item = ev.embed([conversation], regions=kwargs["regions"])[0]
            turns = turns_with(item, method, kwargs.get("added"))
            out[name][way] = der_figures(truth, turns)
            print(f"{name} {way}: {out[name][way]}")
    return out


def seconds_per_minute() -> dict[str, float]:
    """Each VAD's time on the 60 s AMI meeting (median of 3; torch's threads as set)."""
    from worker.pipeline.diarization import speech_regions

    audio = _read(EVAL_DIR / "ami_meeting_4spk.wav")
    minutes = len(audio) / 16000 / 60
    out = {}
    for name, find in (("silero", speech_regions), ("segmentation", segmentation.speech_regions)):
        find(audio)
        times = []
        for _ in range(3):
            started = time.perf_counter()
            find(audio)
            times.append(time.perf_counter() - started)
        out[name] = round(statistics.median(times) / minutes, 3)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one conversation per count")
    args = parser.parse_args(argv)
    missing = segmentation.available()
    if missing:
        print(f"cannot run: {missing}")
        return 2
    os.environ.setdefault("ASR_DEVICE", "cpu")
    import torch

    from worker.pipeline.diarization import ENCODER_THREADS, warm_encoder

    torch.set_num_threads(ENCODER_THREADS)
    warm_encoder()
    per_count = dict.fromkeys(built.PER_COUNT, 1) if args.quick else None
    started = time.perf_counter()
    arguments = ways()
    results: dict[str, Any] = {"seed": SEED}
    for side in ("dev", "test"):
        conversations, weak = side_of(side, per_count)
        results[side] = {}
        for way, kwargs in arguments.items():
            results[side][way] = measure(conversations, weak, **kwargs)
            _show(f"{side} {way}", results[side][way])
        if side == "dev":
            # Ties to the earlier way: Silero, the worker's.
            results["kept"] = max(WAYS, key=lambda w: (objective(results["dev"][w]["all"]), -WAYS.index(w)))
            print(f"kept on development: {results['kept']}")
    results["real"] = real_files(arguments)
    results["seconds_per_minute_of_audio"] = seconds_per_minute()
    timing = results["seconds_per_minute_of_audio"]
    print(f"VAD seconds per minute of audio (threads {torch.get_num_threads()}): {timing}")
    print(f"{time.perf_counter() - started:.0f} s")
    if not args.quick:
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
