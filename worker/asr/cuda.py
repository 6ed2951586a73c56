"""CUDA detection that is safe in a process that will fork.

A CUDA context does not survive ``fork()`` (pytorch #68861; faster-whisper #907
is a model loaded in the parent that then hangs in the children). The prefork
parent therefore asks NVML, the driver's management library, which counts
GPUs without creating a context. Only a child, which never forks, asks the
CUDA runtime itself (:func:`runtime_device_count`).
"""

from __future__ import annotations

import ctypes
import logging
import os

__all__ = ["detect_cuda_availability", "runtime_device_count", "visible_device_limit"]

log = logging.getLogger(__name__)

_NVML_LIBRARIES = ("libnvidia-ml.so.1", "libnvidia-ml.so", "nvml.dll")


def visible_device_limit(value: str | None) -> int | None:
    """How many devices ``CUDA_VISIBLE_DEVICES`` leaves visible (``None``: no limit)."""
    if value is None:
        return None
    ids = [part.strip() for part in value.split(",") if part.strip()]
    visible = 0
    for device_id in ids:
        # CUDA stops at the first invalid entry, and "-1" hides every device.
        if device_id.startswith("-"):
            break
        visible += 1
    return visible


def _load_nvml() -> ctypes.CDLL | None:
    for name in _NVML_LIBRARIES:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def detect_cuda_availability() -> tuple[bool, str | None, int]:
    """Report whether CUDA GPUs are present, without creating a CUDA context.

    Returns:
        ``(available, cuda_version, device_count)``: the CUDA version is the one
        the driver supports (``"12.4"``), ``None`` without a driver.
    """
    nvml = _load_nvml()
    if nvml is None:
        return False, None, 0
    if nvml.nvmlInit_v2() != 0:
        log.debug("NVML is installed but did not initialise: no usable driver")
        return False, None, 0
    try:
        count = ctypes.c_uint(0)
        if nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)) != 0:
            return False, None, 0
        version = ctypes.c_int(0)
        cuda_version = None
        if nvml.nvmlSystemGetCudaDriverVersion_v2(ctypes.byref(version)) == 0:
            cuda_version = f"{version.value // 1000}.{version.value % 1000 // 10}"
    finally:
        nvml.nvmlShutdown()
    device_count = count.value
    limit = visible_device_limit(os.environ.get("CUDA_VISIBLE_DEVICES"))
    if limit is not None:
        device_count = min(device_count, limit)
    return device_count > 0, cuda_version, device_count


def runtime_device_count() -> int:
    """GPUs the CUDA runtime that CTranslate2 was built against can use.

    This creates a CUDA context: call it only in a process that will not fork.
    """
    import ctranslate2

    try:
        return int(ctranslate2.get_cuda_device_count())
    except Exception as exc:  # a driver/runtime mismatch raises here
        log.warning("CTranslate2 cannot use CUDA: %s", exc)
        return 0
