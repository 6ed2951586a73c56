"""CUDA detection through NVML: parsing, visibility, and the no-driver case."""

from __future__ import annotations

import ctypes

import pytest

from worker.asr import cuda


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", 0),
        ("-1", 0),
        ("0", 1),
        ("0,1", 2),
        ("1, 2,3", 3),
        ("0,-1,2", 1),
        ("GPU-abc,GPU-def", 2),
    ],
)
def test_visible_device_limit(value, expected):
    assert cuda.visible_device_limit(value) == expected


class _FakeNvml:
    """Stands in for libnvidia-ml: the C calls detection makes, by their real names."""

    def __init__(self, count: int, version: int, init_status: int = 0) -> None:
        self.count, self.version, self.init_status = count, version, init_status
        self.shut_down = False

    def nvmlInit_v2(self) -> int:
        return self.init_status

    def nvmlDeviceGetCount_v2(self, ref) -> int:
        ctypes.cast(ref, ctypes.POINTER(ctypes.c_uint)).contents.value = self.count
        return 0

    def nvmlSystemGetCudaDriverVersion_v2(self, ref) -> int:
        ctypes.cast(ref, ctypes.POINTER(ctypes.c_int)).contents.value = self.version
        return 0

    def nvmlShutdown(self) -> int:
        self.shut_down = True
        return 0


def test_no_driver_means_no_cuda(monkeypatch):
    monkeypatch.setattr(cuda, "_load_nvml", lambda: None)
    assert cuda.detect_cuda_availability() == (False, None, 0)


def test_gpus_and_driver_cuda_version_are_reported(monkeypatch):
    nvml = _FakeNvml(count=4, version=12040)
    monkeypatch.setattr(cuda, "_load_nvml", lambda: nvml)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert cuda.detect_cuda_availability() == (True, "12.4", 4)
    assert nvml.shut_down


def test_cuda_visible_devices_limits_the_count(monkeypatch):
    monkeypatch.setattr(cuda, "_load_nvml", lambda: _FakeNvml(count=4, version=13000))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2")
    assert cuda.detect_cuda_availability() == (True, "13.0", 1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert cuda.detect_cuda_availability() == (False, "13.0", 0)


def test_a_driver_that_fails_to_initialise_means_no_cuda(monkeypatch):
    monkeypatch.setattr(cuda, "_load_nvml", lambda: _FakeNvml(count=1, version=12000, init_status=9))
    assert cuda.detect_cuda_availability() == (False, None, 0)


def test_this_machine_reports_without_raising():
    available, _version, count = cuda.detect_cuda_availability()
    assert isinstance(available, bool) and count >= 0
    assert available == (count > 0)
