"""Device, compute type, GPU and thread selection: the GPU paths, tested on a CPU."""

from __future__ import annotations

import pytest

from worker.asr.selection import (
    select_compute_type,
    select_cpu_threads,
    select_device,
    select_device_index,
)
from worker.pipeline.errors import ConfigError


@pytest.mark.parametrize(
    ("requested", "cuda", "expected"),
    [
        ("auto", True, "cuda"),
        ("auto", False, "cpu"),
        ("cpu", True, "cpu"),
        ("cpu", False, "cpu"),
        ("cuda", True, "cuda"),
    ],
)
def test_select_device(requested, cuda, expected):
    assert select_device(requested, cuda) == expected


def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"ASR_DEVICE=cuda.*ASR_DEVICE=auto"):
        select_device("cuda", False)


@pytest.mark.parametrize(
    ("requested", "device", "expected"),
    [
        ("auto", "cuda", "float16"),
        ("auto", "cpu", "int8"),
        ("int8_float16", "cuda", "int8_float16"),
        ("float32", "cpu", "float32"),
    ],
)
def test_select_compute_type(requested, device, expected):
    assert select_compute_type(requested, device) == expected


def test_compute_type_is_checked_against_what_the_device_supports():
    cpu_types = {"int8", "int8_float32", "float32"}
    assert select_compute_type("auto", "cpu", cpu_types) == "int8"
    with pytest.raises(
        ConfigError, match=r"ASR_COMPUTE_TYPE=float16 is not supported on cpu \(supported: float32, int8"
    ):
        select_compute_type("float16", "cpu", cpu_types)


@pytest.mark.parametrize(
    ("configured", "child", "count", "expected"),
    [
        (None, None, 4, 0),  # not a prefork child: the first GPU
        (None, 0, 4, 0),
        (None, 3, 4, 3),  # child i takes GPU i
        (None, 5, 4, 1),  # more children than GPUs: round robin
        (None, 2, 1, 0),
        (2, 0, 4, 2),  # ASR_DEVICE_INDEX wins
    ],
)
def test_each_child_gets_its_gpu(configured, child, count, expected):
    assert select_device_index(configured, child, count) == expected


def test_device_index_beyond_the_visible_gpus_is_an_error():
    with pytest.raises(ConfigError, match="ASR_DEVICE_INDEX=2"):
        select_device_index(2, 0, 2)


@pytest.mark.parametrize(
    ("configured", "cores", "children", "expected"),
    [(0, 2, 2, 1), (0, 8, 2, 4), (0, 2, 4, 1), (0, 16, 1, 16), (3, 2, 2, 3)],
)
def test_cpu_threads_divide_the_cores_among_children(configured, cores, children, expected):
    assert select_cpu_threads(configured, cores, children) == expected
