"""The same files from S3 and from local disk through the fleet, side by side in one run.

    python -m bench.sources [--clips 12] [--long-minutes 2 2] [--rounds 2] [--out bench/results]

A real S3 server process (moto's ``moto_server``) holds a copy of every file;
one warm 2-child worker (private Redis, default settings, ``ASR_AUDIO_URLS``
naming the bucket) takes the workload as local paths and as ``s3://`` URLs, in
ABBA order over the rounds so that a drift in machine load favours neither.
Throughput = audio seconds / wall seconds (first submit to the last result's
``date_done``). Each URL job downloads its object into the node's spool before
decoding it; there is no prefetching: the figure says what a download costs.
Also printed: the children's summed job time (``timings.total``, which includes a
URL job's download), the load average, and whether every transcript from S3
equals the one from disk.
Nothing is asserted; ``<out>/sources.json`` keeps the figures.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from celery.result import AsyncResult

from bench import write_report
from evaluation.stores import AWS_ENV, moto_server, s3_client
from evaluation.workloads import Workload, long_files, short_clips
from producer import Client, Job
from producer.local import LocalStack

BUCKET = "bench"
ROOT = Path(__file__).resolve().parent.parent


def _run(client: Client, locations: list[str]) -> tuple[float, list[dict[str, Any]]]:
    """Submit every location at once; wall seconds to the last result, and the results in order."""
    started = time.time()
    jobs: list[Job] = [client.submit(location, fanout_seconds=0) for location in locations]
    results = [job.result(timeout=3600) for job in jobs]
    done = max(AsyncResult(job.id, app=client.app).date_done.timestamp() for job in jobs)
    return done - started, results


def _upload(s3: Any, workload: Workload) -> list[str]:
    """Put the workload's files into the bucket; their URLs, in order."""
    urls = []
    for index, path in enumerate(workload.paths):
        key = f"{workload.name}/{index:03d}-{path.name}"
        s3.upload_file(str(path), BUCKET, key)
        urls.append(f"s3://{BUCKET}/{key}")
    return urls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--clips", type=int, default=12, help="short clips (the real recordings, repeated)")
    parser.add_argument("--long-minutes", type=float, nargs="*", default=[2.0, 2.0], help="long files")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each source, in ABBA order")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results", help="where sources.json goes"
    )
    args = parser.parse_args(argv)

    clips = short_clips(args.clips)
    long = long_files(args.long_minutes) if args.long_minutes else None
    paths = [*clips.paths, *(long.paths if long else ())]
    seconds = sum(clips.seconds) + (sum(long.seconds) if long else 0.0)
    with (
        tempfile.TemporaryDirectory(prefix="bench-sources-") as folder,
        moto_server(Path(folder)) as endpoint,
    ):
        s3 = s3_client(endpoint)
        s3.create_bucket(Bucket=BUCKET)
        urls = _upload(s3, clips) + (_upload(s3, long) if long else [])
        env = {
            **AWS_ENV,
            "AWS_ENDPOINT_URL": endpoint,
            "ASR_AUDIO_URLS": f"s3://{BUCKET}/",
            "ASR_SPOOL_DIR": str(Path(folder) / "spool"),
            "ASR_CACHE_DIR": str(Path(folder) / "cache"),
        }
        print(f"workload: {len(paths)} files, {seconds:.0f} s of audio; worker: 2 children, tiny.en")
        with LocalStack(concurrency=2, env=env, log_path=Path(folder) / "worker.log") as stack:
            with Client(stack.url, stack.url) as client:
                client.transcribe(str(paths[0]), timeout=600)  # warm both the model and the page cache
                client.transcribe(urls[0], timeout=600)
                walls: dict[str, list[float]] = {"local": [], "s3": []}
                loads: list[float] = []
                s3_busy = 0.0
                texts: dict[str, list[str]] = {}
                order = [("local", "s3")[(r + (r // 2)) % 2] for r in range(2 * args.rounds)]  # ABBA...
                for source in order:
                    locations = [str(p) for p in paths] if source == "local" else urls
                    wall, results = _run(client, locations)
                    walls[source].append(wall)
                    texts[source] = [r["text"] for r in results]
                    busy = sum(r["timings"]["total"] for r in results)
                    s3_busy += busy if source == "s3" else 0.0
                    loads.append(os.getloadavg()[0])
                    print(
                        f"  {source:5s} {wall:7.2f} s wall  {seconds / wall:6.2f} audio s / s  "
                        f"children busy {busy:6.1f} s  load average {loads[-1]:.1f}"
                    )
        fetches = [
            (int(m[1]), float(m[2]))
            for m in re.finditer(
                r"fetched (\d+) bytes in ([\d.]+) s", (Path(folder) / "worker.log").read_text()
            )
        ]
    fetched = sum(s for _, s in fetches)
    print(
        f"downloads: {len(fetches)}, {sum(b for b, _ in fetches) / 1e6:.1f} MB in {fetched:.2f} s: "
        f"{100 * fetched / s3_busy:.1f} % of the S3 jobs' time in the children"
    )
    local, s3 = statistics.median(walls["local"]), statistics.median(walls["s3"])
    print(f"throughput local: {seconds / local:.2f} audio s / s (median of {len(walls['local'])})")
    print(f"throughput s3:    {seconds / s3:.2f} audio s / s (median of {len(walls['s3'])})")
    print(f"s3 / local:       {local / s3:.3f}x (target >= 0.9x)")
    same = sum(a == b for a, b in zip(texts["local"], texts["s3"], strict=True))
    print(f"transcripts from s3 equal to those from disk: {same} of {len(paths)}")
    report = {
        "measured": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "load_average": [round(load, 1) for load in loads]},
        "workload": {
            "files": len(paths),
            "audio_seconds": round(seconds, 1),
            "clips": args.clips,
            "long_minutes": args.long_minutes,
        },
        "worker": "2 children, tiny.en, default settings, local moto S3 server",
        "order": order,
        "wall_seconds": {source: [round(w, 2) for w in values] for source, values in walls.items()},
        "throughput_audio_s_per_s": {"local": round(seconds / local, 2), "s3": round(seconds / s3, 2)},
        "s3_over_local": round(local / s3, 3),
        "downloads": {
            "count": len(fetches),
            "megabytes": round(sum(b for b, _ in fetches) / 1e6, 1),
            "seconds": round(fetched, 2),
            "share_of_s3_job_time": round(fetched / s3_busy, 4),
        },
        "transcripts_equal": f"{same} of {len(paths)}",
    }
    write_report(report, args.out, "sources.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
