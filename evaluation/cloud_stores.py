"""Real emulators for ``gs://`` and ``az://`` audio: gcp-storage-emulator and Azurite, as processes.

gcp-storage-emulator is a Python package (requirements-dev.txt); Azurite, Microsoft's
own Blob storage emulator, is an npm package: ``.ci/run`` installs it into
``.cache/azurite`` (``npm install --prefix .cache/azurite azurite``), and
:func:`azurite_binary` also finds one on ``PATH``. The workers read both with the
SDKs' standard variables (``STORAGE_EMULATOR_HOST``, ``AZURE_STORAGE_CONNECTION_STRING``).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evaluation.stores import free_port, server_process

__all__ = ["AZURITE_ACCOUNT", "azurite", "azurite_binary", "azurite_connection_string", "gcs_emulator"]

#: Azurite's well-known development account (the same in every Azurite; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_ROOT = Path(__file__).resolve().parent.parent


def azurite_binary() -> str | None:
    """Azurite's Blob service command, from ``.cache/azurite`` or ``PATH``; None when not installed."""
    local = _ROOT / ".cache" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
    return str(local) if local.exists() else shutil.which("azurite-blob")


def azurite_connection_string(endpoint: str, key: str = AZURITE_KEY) -> str:
    """The connection string of Azurite's account at ``endpoint`` (``key`` wrong on purpose in a test)."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={key};"
        f"BlobEndpoint={endpoint}/{AZURITE_ACCOUNT};"
    )


@contextmanager
def azurite(log_dir: Path) -> Iterator[str]:
    """Run Azurite's Blob service in memory on a free port; yields its endpoint URL."""
    binary = azurite_binary()
    if binary is None:
        raise RuntimeError("Azurite is not installed: npm install --prefix .cache/azurite azurite")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    argv = [binary, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence", "--loose"]
    # The Azure SDK may be newer than the Azurite release: its API version check would refuse it.
    argv.append("--skipApiVersionCheck")
    with server_process("azurite", argv, log_dir, f"{endpoint}/{AZURITE_ACCOUNT}?comp=list"):
        yield endpoint


@contextmanager
def gcs_emulator(log_dir: Path) -> Iterator[str]:
    """Run gcp-storage-emulator in memory on a free port; yields its endpoint URL."""
    binary = shutil.which("gcp-storage-emulator") or str(Path(sys.executable).parent / "gcp-storage-emulator")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    argv = [binary, "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"]
    with server_process("gcs-emulator", argv, log_dir, f"{endpoint}/storage/v1/b"):
        yield endpoint
