"""Peak memory of a child transcribing one long file, with and without pieces.

    python -m bench.memory [--minutes 60]

Runs the same file (built by evaluation.workloads from real speech; cached in
bench/.cache) through a 1-child worker twice, with ASR_CHUNK_SECONDS=0 (the
whole file at once, as faster-whisper does by itself) and with the default
600 s pieces, and prints each child's peak RSS (VmHWM) and the wall time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from evaluation.memory import status_mib
from producer import Client
from producer.local import LocalStack

ROOT = Path(__file__).resolve().parent.parent


def measure(audio: Path, chunk_seconds: str) -> tuple[float, float, int]:
    """(peak RSS MiB of the child, wall seconds, segments) for one run."""
    with tempfile.TemporaryDirectory() as logs:
        env = {"ASR_CHUNK_SECONDS": chunk_seconds, "ASR_CPU_THREADS": "2"}
        with LocalStack(concurrency=1, env=env, log_path=Path(logs) / "w.log") as stack:
            client = Client(stack.url, stack.url)
            started = time.perf_counter()
            result = client.transcribe(audio, timeout=3600)
            seconds = time.perf_counter() - started
            peak = max(status_mib(pid, "VmHWM") for pid in stack.child_pids())
            client.close()
    return peak, seconds, len(result["segments"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=60, choices=[2, 10, 60])
    args = parser.parse_args()
    from evaluation.workloads import long_files

    audio = long_files([args.minutes]).paths[0]
    print(f"file: {audio.name} ({args.minutes} min of real speech with pauses); 1 child x 2 threads, tiny.en")
    for label, chunk in (("whole file (ASR_CHUNK_SECONDS=0)", "0"), ("600 s pieces (default)", "600")):
        peak, seconds, segments = measure(audio, chunk)
        print(f"{label:34}: peak RSS {peak:7.1f} MiB, {seconds:6.1f} s, {segments} segments")


if __name__ == "__main__":
    main()
