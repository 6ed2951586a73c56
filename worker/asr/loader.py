"""The per-process Whisper model: load once, warm up, hand out, unload.

``get_model()`` is the one way in. In a Celery worker the
``worker_process_init`` handler calls it in each prefork child so the first
job finds a warm model; the parent process never loads one.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from worker.asr.cuda import detect_cuda_availability, runtime_device_count
from worker.asr.models import resolve_model_path
from worker.asr.selection import (
    select_compute_type,
    select_cpu_threads,
    select_device,
    select_device_index,
)
from worker.pipeline.errors import ModelUnavailableError
from worker.pipeline.settings import Settings, get_settings

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

__all__ = [
    "get_model",
    "get_model_config",
    "load_model",
    "set_pool_size",
    "unload_model",
]

log = logging.getLogger(__name__)

WARMUP_SECONDS = 1.0
SAMPLE_RATE = 16000


@dataclass(frozen=True)
class _Loaded:
    model: WhisperModel
    path: str
    device: str
    device_index: int
    compute_type: str
    cpu_threads: int
    multilingual: bool
    load_seconds: float
    warmup_seconds: float


_lock = threading.RLock()
_loaded: _Loaded | None = None
_pool_size = 1


def set_pool_size(children: int) -> None:
    """Tell the loader how many children share this machine (for ASR_CPU_THREADS=0)."""
    global _pool_size
    _pool_size = max(1, int(children))


def _child_index() -> int | None:
    """The index billiard gives a prefork child (0..N-1), ``None`` elsewhere."""
    try:
        from billiard.process import current_process
    except ImportError:
        return None
    index = getattr(current_process(), "index", None)
    return index if isinstance(index, int) else None


def _placement(settings: Settings) -> tuple[str, int, str]:
    """Device, GPU index and compute type for this process."""
    available, _, count = detect_cuda_availability()
    if available and settings.device != "cpu":
        # NVML sees a GPU; make sure CTranslate2's CUDA runtime can use it too.
        count = runtime_device_count()
        available = count > 0
    device = select_device(settings.device, available)
    index = select_device_index(settings.device_index, _child_index(), count) if device == "cuda" else 0
    import ctranslate2

    supported = ctranslate2.get_supported_compute_types(device, index)
    compute_type = select_compute_type(settings.compute_type, device, supported)
    return device, index, compute_type


def _warm_up(model: WhisperModel) -> None:
    # One second of quiet noise runs the encoder and a decoder step, so the
    # first real job does not pay for lazy allocations.
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(int(WARMUP_SECONDS * SAMPLE_RATE)) * 0.01).astype(np.float32)
    segments, _ = model.transcribe(audio, beam_size=1, language="en" if model.model.is_multilingual else None)
    for _ in segments:
        pass


def load_model(force_reload: bool = False) -> WhisperModel | None:
    """Load (or reload) the process's model and warm it up.

    Returns ``None`` when ``ENABLE_FASTER_WHISPER`` is false.

    Raises:
        ModelUnavailableError: the model cannot be found, downloaded or loaded.
        ConfigError: the device or compute type asked for cannot be used.
    """
    global _loaded
    settings = get_settings()
    if not settings.enable_faster_whisper:
        return None
    with _lock:
        if _loaded is not None and not force_reload:
            return _loaded.model
        if _loaded is not None:
            unload_model()
        from faster_whisper import WhisperModel

        started = time.perf_counter()
        path = resolve_model_path(settings.model_id, settings.cache_dir)
        device, index, compute_type = _placement(settings)
        threads = select_cpu_threads(settings.cpu_threads, os.cpu_count() or 1, _pool_size)
        try:
            model = WhisperModel(
                str(path),
                device=device,
                device_index=index,
                compute_type=compute_type,
                cpu_threads=threads,
                download_root=str(settings.cache_dir),
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelUnavailableError(
                f"could not load model {settings.model_id!r} from {path} on {device} ({compute_type}): {exc}"
            ) from None
        loaded_at = time.perf_counter()
        _warm_up(model)
        warmed_at = time.perf_counter()
        _loaded = _Loaded(
            model=model,
            path=str(path),
            device=device,
            device_index=index,
            compute_type=compute_type,
            cpu_threads=threads,
            multilingual=bool(model.model.is_multilingual),
            load_seconds=loaded_at - started,
            warmup_seconds=warmed_at - loaded_at,
        )
        _log_banner(settings, _loaded)
        return model


def get_model() -> WhisperModel | None:
    """The process's model, loaded on first use; ``None`` when ASR is disabled."""
    loaded = _loaded
    if loaded is not None:
        return loaded.model
    return load_model()


def unload_model() -> bool:
    """Drop the process's model and free its memory. Returns whether one was loaded."""
    global _loaded
    with _lock:
        if _loaded is None:
            return False
        log.info("unloading model %s (pid %d)", _loaded.path, os.getpid())
        _loaded = None
        gc.collect()
        return True


def get_model_config() -> dict[str, Any]:
    """What this process serves: the settings, and load facts once a model is loaded."""
    settings = get_settings()
    config: dict[str, Any] = {
        "enabled": settings.enable_faster_whisper,
        "model_id": settings.model_id,
        "device": settings.device,
        "compute_type": settings.compute_type,
        "beam_size": settings.beam_size,
        "batch_size": settings.batch_size,
        "cache_dir": str(settings.cache_dir),
        "worker_pid": os.getpid(),
        "loaded": _loaded is not None,
    }
    loaded = _loaded
    if loaded is not None:
        config.update(
            model_path=loaded.path,
            device=loaded.device,
            device_index=loaded.device_index,
            compute_type=loaded.compute_type,
            cpu_threads=loaded.cpu_threads,
            multilingual=loaded.multilingual,
            load_seconds=round(loaded.load_seconds, 3),
            warmup_seconds=round(loaded.warmup_seconds, 3),
        )
    return config


def _log_banner(settings: Settings, loaded: _Loaded) -> None:
    device = loaded.device if loaded.device == "cpu" else f"{loaded.device}:{loaded.device_index}"
    log.info(
        "\n".join(
            [
                "=" * 60,
                "Whisper model ready",
                "  model id     : %s",
                "  model path   : %s",
                "  device       : %s",
                "  compute type : %s",
                "  cpu threads  : %d",
                "  beam size    : %d",
                "  cache dir    : %s",
                "  worker pid   : %d",
                "  load time    : %.2f s",
                "  warm-up time : %.2f s",
                "  total time   : %.2f s",
                "=" * 60,
            ]
        ),
        settings.model_id,
        loaded.path,
        device,
        loaded.compute_type,
        loaded.cpu_threads,
        settings.beam_size,
        settings.cache_dir,
        os.getpid(),
        loaded.load_seconds,
        loaded.warmup_seconds,
        loaded.load_seconds + loaded.warmup_seconds,
    )
