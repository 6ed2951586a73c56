"""Pure choices: which device, compute type, GPU and thread count a child uses."""

from __future__ import annotations

from collections.abc import Collection

from worker.pipeline.errors import ConfigError

__all__ = ["select_compute_type", "select_cpu_threads", "select_device", "select_device_index"]


def select_device(requested: str, cuda_available: bool) -> str:
    """Resolve ``ASR_DEVICE``: ``auto`` takes CUDA when usable, else the CPU.

    Raises:
        ConfigError: ``cuda`` was asked for and no usable GPU exists.
    """
    if requested == "auto":
        return "cuda" if cuda_available else "cpu"
    if requested == "cuda" and not cuda_available:
        raise ConfigError(
            "ASR_DEVICE=cuda but no usable CUDA GPU was found "
            "(no NVIDIA driver, no visible device, or CTranslate2 cannot load CUDA 12/cuDNN 9); "
            "set ASR_DEVICE=auto to fall back to the CPU"
        )
    return requested


def select_compute_type(requested: str, device: str, supported: Collection[str] | None = None) -> str:
    """Resolve ``ASR_COMPUTE_TYPE``: ``auto`` is float16 on a GPU and int8 on the CPU.

    Args:
        supported: the types CTranslate2 supports on ``device``, when known.

    Raises:
        ConfigError: the type is not supported on the device.
    """
    chosen = requested
    if requested == "auto":
        chosen = "float16" if device == "cuda" else "int8"
    if supported is not None and chosen not in supported:
        raise ConfigError(
            f"ASR_COMPUTE_TYPE={chosen} is not supported on {device} "
            f"(supported: {', '.join(sorted(supported))})"
        )
    return chosen


def select_device_index(configured: int | None, child_index: int | None, device_count: int) -> int:
    """Pick the GPU of a prefork child.

    An explicit ``ASR_DEVICE_INDEX`` wins; otherwise child *i* of a worker
    takes GPU ``i mod device_count``, so N children on N GPUs get one each.
    """
    if configured is not None:
        if device_count and configured >= device_count:
            raise ConfigError(f"ASR_DEVICE_INDEX={configured} but only {device_count} GPU(s) are visible")
        return configured
    if not child_index or device_count <= 1:
        return 0
    return child_index % device_count


def select_cpu_threads(configured: int, cpu_count: int, children: int) -> int:
    """Threads per child: ``ASR_CPU_THREADS``, or the cores divided among the children.

    Several single-thread children beat one process with many threads on short
    clips (the README's measurement), so the default gives each child its share.
    """
    if configured > 0:
        return configured
    return max(1, cpu_count // max(1, children))
