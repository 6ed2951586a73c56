"""The model's lifecycle in a prefork worker.

* ``worker_init`` runs once in the parent, before any child is forked: it
  checks the settings, finds (or downloads) the model files and, when CUDA is
  demanded, asks NVML whether a GPU exists. It never loads a model or creates
  a CUDA context, so the children fork clean. A problem here stops the worker
  with a clear message instead of a crash loop of children.
* ``worker_process_init`` runs in each child: it loads and warms the model (and,
  with ``ASR_DIARIZATION=true``, the speaker encoder beside it).
* ``worker_process_shutdown`` unloads it.
* ``task_postrun`` logs each finished job's shape (never its text).

:mod:`worker.runtime.hooks` connects these handlers, with every other one, in order.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from worker.asr import detect_cuda_availability, get_model, set_pool_size, unload_model
from worker.asr.models import resolve_model_path
from worker.pipeline.errors import ASRError, ConfigError
from worker.pipeline.settings import Settings, get_settings
from worker.pipeline.speaker_encoder import missing_packages
from worker.pipeline.spool import clean_spool
from worker.runtime.privacy import log_summary

log = logging.getLogger(__name__)

_worker: Any = None


def preflight() -> None:
    """Check, in the parent, everything that would make every child fail.

    Raises:
        ConfigError, ModelUnavailableError: the worker cannot serve jobs.
    """
    settings = get_settings()
    if not settings.enable_faster_whisper:
        log.warning("ENABLE_FASTER_WHISPER is false: this worker refuses ASR tasks")
        return
    _check_directories(settings)
    if settings.device == "cuda" and not detect_cuda_availability()[0]:
        raise ConfigError("ASR_DEVICE=cuda but NVML finds no NVIDIA GPU on this machine")
    if settings.diarization and (missing := missing_packages()):
        raise ConfigError(
            f"ASR_DIARIZATION=true but {', '.join(missing)} not installed (requirements-diarization.txt)"
        )
    path = resolve_model_path(settings.model_id, settings.cache_dir)
    log.info("model %s found at %s", settings.model_id, path)
    if not settings.audio_roots:
        log.warning("ASR_AUDIO_ROOTS is not set: jobs may transcribe any file this worker can read")


def _check_directories(settings: Settings) -> None:
    try:
        settings.cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"ASR_CACHE_DIR={settings.cache_dir} cannot be created: {exc}") from None
    if not os.access(settings.cache_dir, os.R_OK | os.W_OK | os.X_OK):
        raise ConfigError(f"ASR_CACHE_DIR={settings.cache_dir} is not readable and writable")
    for root in settings.audio_roots:
        if not root.is_dir() or not os.access(root, os.R_OK | os.X_OK):
            raise ConfigError(f"ASR_AUDIO_ROOTS: {root} is not a readable directory")
    if settings.audio_urls:
        try:
            clean_spool(settings)  # also what a worker killed with its children left behind
        except OSError as exc:  # ConfigError (another user's directory) passes through as it is
            raise ConfigError(f"ASR_SPOOL_DIR={settings.spool_dir} cannot be used: {exc}") from None


def on_worker_init(sender: Any = None, **_: Any) -> None:
    global _worker
    _worker = sender
    try:
        preflight()
    except ASRError as exc:
        # SystemExit passes through Celery's signal dispatch, which logs and swallows
        # ordinary exceptions; its message is the one line the operator sees.
        raise SystemExit(f"worker cannot start: {type(exc).__name__}: {exc}") from None


def on_process_init(**_: Any) -> None:
    if _worker is not None and isinstance(getattr(_worker, "concurrency", None), int):
        set_pool_size(_worker.concurrency)
    try:
        clean_spool(get_settings())  # what a killed child left in the spool
    except Exception:
        log.exception("the spool could not be cleaned")
    try:
        get_model()
    except Exception:
        # Raising here would kill the child and Celery would fork another that
        # fails the same way; instead each job reports the error.
        log.exception("model failed to load in this child; its jobs will fail until it loads")
    if get_settings().diarization:
        _warm_speaker_encoder()


def _warm_speaker_encoder() -> None:
    from worker.pipeline.diarize_job import warm

    try:
        warm()
    except Exception:
        log.exception("speaker encoder failed to load in this child; its diarize jobs will fail")


def on_process_shutdown(**_: Any) -> None:
    unload_model()


def on_task_postrun(
    sender: Any = None, task_id: str | None = None, retval: Any = None, state: str | None = None, **_: Any
) -> None:
    if state == "SUCCESS" and sender is not None:
        log_summary(task_id, sender.name, retval)
