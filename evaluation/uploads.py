"""A large upload to the HTTP API and what it costs the API process in memory.

Shared by ``bench/api.py`` (which prints the figure) and
``tests/integration/test_api_uploads.py`` (which keeps it bounded). The body is
generated as it is sent, chunked with no ``Content-Length``: neither the client
nor the API ever holds it whole.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from evaluation.memory import status_mib

__all__ = ["UploadMemory", "generated_upload", "measure_upload"]

BOUNDARY = "generated-boundary"
#: One MiB of bytes that are not all zero (a file system may store zeros sparsely).
_BLOCK = bytes(range(256)) * 4096


def generated_upload(megabytes: int, filename: str = "big.wav") -> Iterator[bytes]:
    """A ``multipart/form-data`` body (boundary :data:`BOUNDARY`) with a ``megabytes`` MiB file part."""
    yield (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
           "Content-Type: audio/wav\r\n\r\n").encode()  # fmt: skip
    for _ in range(megabytes):
        yield _BLOCK
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


@dataclass(frozen=True)
class UploadMemory:
    """One upload to ``POST /v1/jobs`` as measured from outside the API process."""

    #: The API process's resident memory before the upload (MiB).
    rss_before: float
    #: Its peak resident memory (``VmHWM``) after the answer (MiB).
    peak_after: float
    megabytes: int
    seconds: float
    #: The job the upload became.
    job_id: str

    @property
    def growth(self) -> float:
        """How much the peak grew over the memory before (MiB)."""
        return self.peak_after - self.rss_before


def measure_upload(url: str, key: str, pid: int, megabytes: int) -> UploadMemory:
    """Send a generated ``megabytes`` MiB upload to ``POST /v1/jobs`` of the API at ``url`` (process ``pid``).

    Raises:
        httpx.HTTPStatusError: the API did not accept it.
    """
    headers = {"Authorization": f"Bearer {key}", "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    with httpx.Client(base_url=url, headers=headers, timeout=600) as http:
        http.get("/healthz")
        before = status_mib(pid, "VmRSS")
        started = time.perf_counter()
        answer = http.post("/v1/jobs", content=generated_upload(megabytes))
        seconds = time.perf_counter() - started
        answer.raise_for_status()
        peak = status_mib(pid, "VmHWM")
    return UploadMemory(before, peak, megabytes, seconds, answer.json()["id"])
