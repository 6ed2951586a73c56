"""faster-whisper called directly, without the queue: one or more fresh processes.

A run starts ``processes`` spawned processes. Each loads the model (timed
apart) and warms it up like a worker child does; then, per workload, all wait
at a barrier and take files from a shared counter (longest first) until none
is left. A workload's wall time is from the barrier to the last process
finishing: model loads are excluded, audio decoding is included
(``transcribe`` gets the file path).
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluation.memory import status_mib
from evaluation.workloads import Workload

__all__ = ["Setup", "candidates", "cuda_devices", "naive", "peak_rss_mib", "run", "worker_like"]

#: The worker child's warm-up: 1 s of quiet noise, beam 1 (worker/asr/loader.py).
WARMUP_SECONDS = 1.0


@dataclass(frozen=True)
class Setup:
    """How to call faster-whisper; ``None`` leaves the library's default in place."""

    label: str
    processes: int = 1
    device: str | None = None
    compute_type: str | None = None
    cpu_threads: int | None = None
    beam_size: int | None = None
    #: Use ``BatchedInferencePipeline`` with this batch size (its defaults: VAD on, no timestamps).
    batch_size: int | None = None

    def model_kwargs(self) -> dict[str, Any]:
        names = ("device", "compute_type", "cpu_threads")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    def transcribe_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.beam_size is not None:
            kwargs["beam_size"] = self.beam_size
        if self.batch_size is not None:
            kwargs["batch_size"] = self.batch_size
        return kwargs

    def describe(self) -> str:
        # The batched pipeline's own defaults differ: vad_filter=True, without_timestamps=True.
        pipeline = "BatchedInferencePipeline(model) [VAD on]" if self.batch_size else "model"
        return (
            f"{self.processes} process(es); WhisperModel(path, {_kwargs(self.model_kwargs())}); "
            f"{pipeline}.transcribe(file, {_kwargs(self.transcribe_kwargs())})"
        )


def _kwargs(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "defaults"


def naive() -> Setup:
    """One process, library defaults everywhere (device auto, compute_type default, beam 5)."""
    return Setup("naive")


def worker_like() -> Setup:
    """A worker child's model on this machine's CPU: int8, 1 thread, beam 5."""
    return Setup("worker-like", device="cpu", compute_type="int8", cpu_threads=1, beam_size=5)


def candidates(cores: int, cuda: bool) -> list[Setup]:
    """The direct layouts worth trying on this machine, best one picked per workload."""
    if cuda:
        return [
            Setup("1 proc fp16", device="cuda", compute_type="float16", beam_size=5),
            Setup("1 proc fp16 batched", device="cuda", compute_type="float16", beam_size=5, batch_size=8),
        ]
    int8 = {"device": "cpu", "compute_type": "int8", "beam_size": 5}
    return [
        Setup(f"{cores} procs x 1 thread int8", processes=cores, cpu_threads=1, **int8),
        Setup(f"1 proc x {cores} threads int8", cpu_threads=cores, **int8),
        Setup(f"1 proc x {cores} threads int8 batched", cpu_threads=cores, batch_size=8, **int8),
    ]


def peak_rss_mib(pid: int | str = "self") -> float:
    """A process's peak resident memory (VmHWM), MiB."""
    return round(status_mib(pid, "VmHWM"), 1)


def cuda_devices() -> int:
    """How many GPUs CTranslate2 can use here (0 on a CPU-only machine)."""
    import ctranslate2

    try:
        return int(ctranslate2.get_cuda_device_count())
    except Exception:  # a CPU-only build or no driver
        return 0


def _load(setup: Setup, model_path: str) -> Any:
    import numpy as np
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    model = WhisperModel(model_path, **setup.model_kwargs())
    noise = (np.random.default_rng(0).standard_normal(int(WARMUP_SECONDS * 16000)) * 0.01).astype(np.float32)
    list(model.transcribe(noise, beam_size=1)[0])
    return BatchedInferencePipeline(model) if setup.batch_size else model


def _reset_peak_rss() -> None:
    # Writing 5 to clear_refs resets VmHWM (Linux >= 4.0), so each workload gets its own peak.
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _drain(pipeline: Any, setup: Setup, files: list[str], counter: Any) -> list[dict[str, Any]]:
    """Transcribe files from the shared counter until none is left."""
    done = []
    while True:
        with counter.get_lock():
            index = counter.value
            counter.value += 1
        if index >= len(files):
            return done
        started = time.monotonic()
        segments, _ = pipeline.transcribe(files[index], **setup.transcribe_kwargs())
        words = sum(len(segment.text.split()) for segment in segments)
        done.append({"file": index, "seconds": time.monotonic() - started, "words": words})


def _child(
    setup: Setup, model_path: str, batches: list[list[str]], counters: list[Any], barrier: Any, out: Any
) -> None:
    """One process: load and warm up once, then per workload wait for the others and transcribe."""
    started = time.monotonic()
    pipeline = _load(setup, model_path)
    load_seconds = time.monotonic() - started
    for batch, (files, counter) in enumerate(zip(batches, counters, strict=True)):
        barrier.wait()  # no timeout: the parent stops everyone if a process dies
        _reset_peak_rss()
        begin = time.monotonic()
        done = _drain(pipeline, setup, files, counter)
        out.put(
            {
                "batch": batch,
                "load_seconds": load_seconds,
                "begin": begin,
                "end": time.monotonic(),
                "files": done,
                "peak_rss_mib": peak_rss_mib(),
            }
        )


def _collect(out: Any, procs: list[Any], expected: int) -> list[dict[str, Any]]:
    """Every report; fails at once if a process dies instead of hanging."""
    reports: list[dict[str, Any]] = []
    while len(reports) < expected:
        try:
            reports.append(out.get(timeout=1))
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"a direct-run process exited with code {dead[0]}") from None
    return reports


def _row(setup: Setup, workload: Workload, reports: list[dict[str, Any]]) -> dict[str, Any]:
    wall = max(r["end"] for r in reports) - min(r["begin"] for r in reports)
    per_file = sorted((f for r in reports for f in r["files"]), key=lambda f: f["file"])
    return {
        "setup": setup.describe(),
        "wall_seconds": wall,
        "audio_seconds": workload.audio_seconds,
        "x_realtime": workload.audio_seconds / wall,
        "file_seconds": [round(f["seconds"], 3) for f in per_file],  # longest file first
        "words": sum(f["words"] for f in per_file),
        "load_seconds": [round(r["load_seconds"], 2) for r in reports],
        "peak_rss_mib": [r["peak_rss_mib"] for r in reports],
    }


def run(setup: Setup, workloads: Sequence[Workload], model_path: str) -> dict[str, dict[str, Any]]:
    """Each workload with ``setup``, one after another in the same processes; a row per workload.

    A row has the wall time, throughput, per-file times, words transcribed, and
    per process its model load time and peak RSS during that workload.
    """
    ctx = mp.get_context("spawn")  # a clean interpreter: no threads or libraries inherited from us
    batches = [[str(p) for p in w.longest_first()] for w in workloads]  # processes end close together
    counters = [ctx.Value("i", 0) for _ in workloads]
    barrier = ctx.Barrier(setup.processes)
    out = ctx.Queue()
    args = (setup, model_path, batches, counters, barrier, out)
    procs = [ctx.Process(target=_child, args=args) for _ in range(setup.processes)]
    for proc in procs:
        proc.start()
    try:
        reports = _collect(out, procs, len(procs) * len(workloads))
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():  # only after a failure: the others wait at the barrier
                proc.terminate()
                proc.join()
    return {w.name: _row(setup, w, [r for r in reports if r["batch"] == i]) for i, w in enumerate(workloads)}
