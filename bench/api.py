"""What the HTTP API costs over the producer library, how fast it answers, what an upload holds in memory.

    python -m bench.api [--runs 40] [--rps-seconds 5] [--upload-mb 500]

One private Redis, one 2-child worker (tiny.en) and the API (``producer.api.local.ApiServer``,
a real uvicorn process), side by side in one run:

* submit: ``Client.submit(path)`` against ``POST /v1/jobs {"audio": path}`` (to 202), on a
  queue no worker consumes, so only the enqueue is timed;
* end to end: a 2 s clip of real speech, ``Client.submit`` + ``Job.result`` (polling every
  10 ms; the library's default is 200 ms) against ``POST /v1/audio/transcriptions`` with the
  clip uploaded, interleaved run by run; and, apart from the decoding's own spread, the time
  from the worker storing the job's end (``date_done``) to the caller holding the answer;
* ``GET /v1/jobs/{id}`` of a finished job: requests per second with 8 clients at once
  (and ``/healthz``, which does nothing, for what the machine allows);
* memory: a generated upload of ``--upload-mb`` MB, streamed with no ``Content-Length``;
  the uvicorn process's RSS before and its peak (VmHWM) after.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from evaluation.uploads import UploadMemory, measure_upload
from producer import Client
from producer.api.local import ApiServer, server_env
from producer.local import LocalStack

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-key"
IDLE_QUEUE = "bench-no-worker"


def _ms(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered) * 1000, ordered[max(0, round(0.95 * len(ordered)) - 1)] * 1000


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _clip(folder: Path) -> Path:
    from faster_whisper.audio import decode_audio

    from evaluation.audio import write_wav

    source = ROOT.parent / "shared" / "audio" / "jfk.flac"
    if not source.is_file():  # a checkout without the shared audio: the shipped sample
        source = ROOT / "samples" / "jfk.flac"
    speech = decode_audio(str(source), sampling_rate=16000)
    return write_wav(folder / "clip.wav", speech[: 16000 * 2])


def submit_latency(stack: LocalStack, folder: Path, clip: Path, runs: int) -> dict[str, list[float]]:
    env = server_env(folder / "uploads", keys=KEY, ASR_QUEUE=IDLE_QUEUE)
    times: dict[str, list[float]] = {"library": [], "api": []}
    with ApiServer(stack.url, folder / "api-idle.log", **env) as api, Client(stack.url, stack.url) as client:
        http = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {KEY}"})
        for _ in range(3):  # warm both paths
            client.submit(clip, queue=IDLE_QUEUE)
            http.post("/v1/jobs", json={"audio": str(clip)})
        for _ in range(runs):
            times["library"].append(_timed(lambda: client.submit(clip, queue=IDLE_QUEUE)))
            times["api"].append(
                _timed(lambda: http.post("/v1/jobs", json={"audio": str(clip)}).raise_for_status())
            )
        http.close()
        client.app.control.purge()
    return times


def _ended_at(client: Client, job_id: str) -> float:
    """When the worker stored the job's end (its ``date_done``, UTC), as a Unix time."""
    done = client.app.backend.get_task_meta(job_id, cache=False)["date_done"]
    when = done if isinstance(done, datetime.datetime) else datetime.datetime.fromisoformat(str(done))
    return when.replace(tzinfo=when.tzinfo or datetime.timezone.utc).timestamp()


def end_to_end(api: ApiServer, stack: LocalStack, clip: Path, runs: int) -> dict[str, list[float]]:
    """Whole-request times, and (``... after the end``) from the worker storing the end to the answer."""
    times: dict[str, list[float]] = {
        "library": [],
        "api": [],
        "library after the end": [],
        "api after the end": [],
    }
    data = clip.read_bytes()
    with (
        Client(stack.url, stack.url) as client,
        httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=300) as http,
    ):

        def upload() -> str:
            answer = http.post(
                "/v1/audio/transcriptions",
                files={"file": ("clip.wav", data)},
                data={"model": "whisper-1", "response_format": "text"},
            )
            answer.raise_for_status()
            return answer.headers["x-job-id"]

        def direct() -> str:
            job = client.submit(clip)
            job.result(timeout=300, interval=0.01)
            return job.id

        for call in (direct, upload):  # warm both paths
            call()
        for _ in range(runs):
            for name, call in (("library", direct), ("api", upload)):
                started = time.perf_counter()
                job_id = call()
                times[name].append(time.perf_counter() - started)
                times[f"{name} after the end"].append(time.time() - _ended_at(client, job_id))
    return times


async def _rps(api: ApiServer, path: str, seconds: float, clients: int) -> tuple[int, list[float]]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def hammer(http: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            (await http.get(path)).raise_for_status()
            latencies.append(time.perf_counter() - started)

    async with httpx.AsyncClient(base_url=api.url, headers={"Authorization": f"Bearer {KEY}"}) as http:
        await asyncio.gather(*(hammer(http) for _ in range(clients)))
    return len(latencies), latencies


def upload_memory(stack: LocalStack, folder: Path, megabytes: int) -> UploadMemory:
    """One streamed upload of ``megabytes`` MiB to a queue no worker consumes, then cancelled."""
    env = server_env(folder / "uploads", keys=KEY, ASR_QUEUE=IDLE_QUEUE,
                     ASR_API_MAX_UPLOAD_BYTES=str((megabytes + 1) << 20))  # fmt: skip
    with ApiServer(stack.url, folder / "api-memory.log", **env) as api:
        assert api.pid is not None
        measured = measure_upload(api.url, KEY, api.pid, megabytes)
        httpx.delete(f"{api.url}/v1/jobs/{measured.job_id}", headers={"Authorization": f"Bearer {KEY}"})
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=40, help="timed runs per path (default 40)")
    parser.add_argument("--rps-seconds", type=float, default=5.0, help="length of the GET test (default 5)")
    parser.add_argument("--upload-mb", type=int, default=500, help="size of the memory test's upload (500)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "uploads").mkdir()
        clip = _clip(folder)
        with LocalStack(
            concurrency=2, env={"ASR_CACHE_DIR": str(folder / "cache")}, log_path=folder / "w.log"
        ) as stack:
            submit = submit_latency(stack, folder, clip, args.runs)
            env = server_env(folder / "uploads", keys=KEY)
            with ApiServer(stack.url, folder / "api.log", **env) as api:
                e2e = end_to_end(api, stack, clip, args.runs)
                with Client(stack.url, stack.url) as client:
                    job_id = client.submit(clip).id
                    client.job(job_id).result(timeout=300)
                count, latencies = asyncio.run(_rps(api, f"/v1/jobs/{job_id}", args.rps_seconds, 8))
                baseline, _ = asyncio.run(_rps(api, "/healthz", args.rps_seconds, 8))
            memory = upload_memory(stack, folder, args.upload_mb)

    print(f"HTTP API vs the producer library ({args.runs} runs each; 2-child worker, tiny.en)")
    print(f"{'':52} {'median ms':>10} {'p95 ms':>10}")
    for label, times in (("submit", submit), ("end to end, 2 s clip", e2e)):
        for path, values in times.items():
            median, p95 = _ms(values)
            print(f"{label + ': ' + path:52} {median:10.1f} {p95:10.1f}")
        added = [a - b for a, b in zip(times["api"], times["library"], strict=True)]
        median, p95 = _ms(added)
        print(f"{label + ': added by the API (paired)':52} {median:10.1f} {p95:10.1f}")
    median, p95 = _ms(latencies)
    print(f"GET /v1/jobs/{{id}}: {count / args.rps_seconds:.0f} requests/s with 8 clients "
          f"(median {median:.1f} ms, p95 {p95:.1f} ms); "
          f"/healthz: {baseline / args.rps_seconds:.0f}/s")  # fmt: skip
    print(f"upload of {memory.megabytes} MiB (streamed, chunked): "
          f"API RSS {memory.rss_before:.1f} MiB before, "
          f"peak {memory.peak_after:.1f} MiB (+{memory.growth:.1f} MiB), "
          f"{memory.megabytes / memory.seconds:.0f} MiB/s")  # fmt: skip


if __name__ == "__main__":
    main()
