"""Audio from gs:// and az:// through a real worker: gcp-storage-emulator and Azurite as processes.

The worker reads them through gcsfs and adlfs with the SDKs' standard variables
only (``STORAGE_EMULATOR_HOST``, ``AZURE_STORAGE_CONNECTION_STRING``). The az://
tests skip where Azurite (npm) is not installed; ``.ci/run`` installs it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from evaluation.cloud_stores import azurite, azurite_binary, azurite_connection_string, gcs_emulator
from evaluation.workloads import referenced_mix
from producer.local import LocalStack
from tests.helpers import audio_file, job_failure, wait_until, word_error_rate, worker_log, worker_stack

pytestmark = pytest.mark.integration
pytest.importorskip("gcsfs", reason="pip install -r requirements-cloud.txt")
pytest.importorskip("adlfs", reason="pip install -r requirements-cloud.txt")

#: The worker refuses bigger downloads (the long mix is about 4 MB).
MAX_BYTES = 8_000_000
needs_azurite = pytest.mark.skipif(
    azurite_binary() is None, reason="Azurite not installed (npm install --prefix .cache/azurite azurite)"
)


class Stores:
    """The emulators, their clients and the worker of this module."""

    def __init__(self, root: Path, gcs: Any, azure: Any, stack: LocalStack) -> None:
        self.root, self.gcs, self.azure, self.stack = root, gcs, azure, stack
        self.spool = root / "spool"

    def put(self, url: str, data: bytes) -> None:
        scheme, _, path = url.partition("://")
        (self.gcs if scheme == "gs" else self.azure).pipe_file(path, data)

    def spooled(self) -> list[str]:
        return sorted(p.name for p in self.spool.iterdir()) if self.spool.exists() else []


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory, redis_server_binary: str) -> Iterator[Stores]:
    from adlfs import AzureBlobFileSystem
    from gcsfs.core import GCSFileSystem

    root = tmp_path_factory.mktemp("cloud")
    env = {
        "ASR_AUDIO_URLS": "gs://audio/,az://audio/",
        "ASR_SPOOL_DIR": str(root / "spool"),
        "ASR_MAX_FILE_BYTES": str(MAX_BYTES),
    }
    with ExitStack() as servers:
        gcs_endpoint = servers.enter_context(gcs_emulator(root))
        env["STORAGE_EMULATOR_HOST"] = gcs_endpoint
        gcs = GCSFileSystem(token="anon", endpoint_url=gcs_endpoint, skip_instance_cache=True)
        gcs.mkdir("audio")
        azure = None
        if azurite_binary() is not None:
            env["AZURE_STORAGE_CONNECTION_STRING"] = azurite_connection_string(
                servers.enter_context(azurite(root))
            )
            azure = AzureBlobFileSystem(
                connection_string=env["AZURE_STORAGE_CONNECTION_STRING"], skip_instance_cache=True
            )
            azure.mkdir("audio")
        jfk = audio_file("jfk.flac").read_bytes()
        gcs.pipe_file("audio/calls/jfk.flac", jfk)
        if azure is not None:
            azure.pipe_file("audio/calls/jfk.flac", jfk)
        with worker_stack(tmp_path_factory, "cloud-worker", **env) as stack:
            yield Stores(root, gcs, azure, stack)


@pytest.fixture(scope="module")
def stack(stores: Stores) -> LocalStack:
    """This module's worker: the conftest's ``client`` and ``from_disk`` use it."""
    return stores.stack


def _as_from_disk(result: dict[str, Any], from_disk: dict[str, Any], url: str) -> None:
    assert result["text"] == from_disk["text"], "as accurate as the same file from disk"
    assert result["segments"] == from_disk["segments"]
    assert result["audio_path"] == url


def test_gs_audio_is_transcribed_as_from_disk(client, stores, from_disk):
    url = "gs://audio/calls/jfk.flac"
    _as_from_disk(client.transcribe(url, timeout=120), from_disk, url)
    assert f"{url}: fetched" in worker_log(stores.stack)
    assert stores.spooled() == [], "the download is removed when the job ends"


@needs_azurite
def test_az_audio_is_transcribed_as_from_disk(client, stores, from_disk):
    url = "az://audio/calls/jfk.flac"
    _as_from_disk(client.transcribe(url, timeout=120), from_disk, url)
    clip = client.submit(url, batch=True)  # the clip-batching path reads them too
    assert clip.result(timeout=120)["text"] == from_disk["text"]
    assert stores.spooled() == []


def test_refused_gs_and_az_reads_fail_typed_and_the_worker_keeps_serving(client, stores):
    stores.put("gs://audio/big/zeros.wav", b"\0" * (MAX_BYTES + 1))
    jobs = {
        "gs://audio/calls/nope.flac": "AudioNotFoundError",
        "gs://nobucket/a.flac": "PathNotAllowedError",
        "gs://audio/big/zeros.wav": "FileTooLargeError",
    }
    if stores.azure is not None:
        jobs["az://audio/calls/nope.flac?sv=2024&sig=s3cr3t"] = "AudioNotFoundError"
        jobs["az://other/a.flac"] = "PathNotAllowedError"
    submitted = {url: client.submit(url) for url in jobs}
    for url, expected in jobs.items():
        failure = job_failure(submitted[url])
        assert failure.error_type == expected, (url, failure.message)
        assert "s3cr3t" not in failure.message
    assert "s3cr3t" not in worker_log(stores.stack)
    assert stores.spooled() == []
    assert client.transcribe("gs://audio/calls/jfk.flac", timeout=120)["text"]


def test_a_long_gs_object_is_fetched_once_and_split_across_the_fleet(client, stores, tmp_path):
    path = tmp_path / "mix.wav"
    reference = referenced_mix(130, path, seed=3)
    stores.put("gs://audio/long/mix.wav", path.read_bytes())
    result = client.transcribe("gs://audio/long/mix.wav", fanout_seconds=60, timeout=300)

    assert len(result["pieces"]) == 3
    fetched = [
        line for line in worker_log(stores.stack).splitlines() if "gs://audio/long/mix.wav: fetched" in line
    ]
    assert len(fetched) == 1, "one download for the job and its pieces on this node"
    assert word_error_rate(reference, result["text"]) < 0.15
    wait_until(lambda: stores.spooled() == [], 30, "the merge did not remove the node's copy")


@needs_azurite
def test_a_wrong_azure_key_is_access_denied_not_retried(stores, tmp_path, monkeypatch):
    # The worker's own credentials are right; this reads through the same fetch code in this
    # process with a wrong key, as a worker with a rotated-out key would.
    from worker.pipeline import cloud
    from worker.pipeline.errors import AccessDeniedError
    from worker.pipeline.fetch import download
    from worker.pipeline.settings import Settings

    right = stores.azure.connection_string
    wrong = right.replace(right.split("AccountKey=")[1].split(";")[0], "A" * 86 + "==")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", wrong)
    monkeypatch.setenv("ASR_AUDIO_URLS", "az://audio/")
    cloud.filesystem.cache_clear()
    try:
        with pytest.raises(AccessDeniedError) as denied:
            download("az://audio/calls/jfk.flac", tmp_path / "a.audio", Settings.from_env())
    finally:
        cloud.filesystem.cache_clear()
    assert "az://audio/calls/jfk.flac" in str(denied.value)
    assert "A" * 86 not in str(denied.value)
