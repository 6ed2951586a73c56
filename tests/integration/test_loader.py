"""The model loader in this process: singleton, thread safety, reload, unload, config, errors."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

from tests.helpers import audio_file
from worker import asr
from worker.pipeline.errors import ConfigError
from worker.pipeline.settings import get_settings


@pytest.fixture()
def fresh(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[pytest.MonkeyPatch]:
    """A loader with nothing loaded and settings re-read from the (patched) environment."""
    for name in (
        "ENABLE_FASTER_WHISPER",
        "ASR_MODEL_ID",
        "ASR_DEVICE",
        "ASR_COMPUTE_TYPE",
        "ASR_CPU_THREADS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ASR_CACHE_DIR", str(tmp_path / "cache"))
    asr.unload_model()
    get_settings.cache_clear()
    yield monkeypatch
    asr.unload_model()
    get_settings.cache_clear()


def test_get_model_loads_once_and_returns_the_same_model(fresh, caplog):
    caplog.set_level(logging.INFO, logger="worker.asr.loader")
    first = asr.get_model()
    assert first is not None
    assert asr.get_model() is first
    assert caplog.text.count("Whisper model ready") == 1


def test_the_model_transcribes_real_speech(fresh):
    segments, info = asr.get_model().transcribe(str(audio_file("jfk.flac")), beam_size=5)
    assert "fellow americans" in " ".join(s.text for s in segments).lower()
    assert info.language == "en"


def test_concurrent_first_calls_load_once(fresh, caplog):
    caplog.set_level(logging.INFO, logger="worker.asr.loader")
    barrier = threading.Barrier(8)
    models = []

    def call() -> None:
        barrier.wait()
        models.append(asr.get_model())

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(models) == 8 and len({id(m) for m in models}) == 1
    assert caplog.text.count("Whisper model ready") == 1


def test_force_reload_replaces_the_model(fresh):
    first = asr.get_model()
    second = asr.load_model(force_reload=True)
    assert second is not first
    assert asr.get_model() is second
    assert asr.load_model() is second  # no force: the loaded one


def test_unload_frees_and_the_next_get_model_loads_again(fresh):
    first = asr.get_model()
    assert asr.unload_model() is True
    assert asr.get_model_config()["loaded"] is False
    assert asr.unload_model() is False
    again = asr.get_model()
    assert again is not None and again is not first


def test_config_reports_what_was_chosen_and_how_long_it_took(fresh):
    before = asr.get_model_config()
    assert before["loaded"] is False and before["device"] == "auto"
    asr.get_model()
    config = asr.get_model_config()
    for key in ("model_id", "device", "compute_type", "beam_size", "batch_size", "cache_dir", "worker_pid"):
        assert key in config
    assert (config["device"], config["compute_type"]) == ("cpu", "int8")  # auto on a machine without a GPU
    assert config["model_id"] == "tiny.en" and config["multilingual"] is False
    assert config["load_seconds"] > 0 and config["warmup_seconds"] > 0


def test_startup_banner_names_device_compute_type_times_and_pid(fresh, caplog):
    caplog.set_level(logging.INFO, logger="worker.asr.loader")
    asr.get_model()
    banner = caplog.text
    for needle in (
        "model id     : tiny.en",
        "device       : cpu",
        "compute type : int8",
        "beam size    : 5",
        "worker pid",
        "load time",
        "warm-up time",
        "total time",
        "cache dir",
    ):
        assert needle in banner


def test_disabled_asr_gives_no_model(fresh):
    fresh.setenv("ENABLE_FASTER_WHISPER", "false")
    get_settings.cache_clear()
    assert asr.get_model() is None
    assert asr.get_model_config()["enabled"] is False


def test_cuda_on_a_machine_without_a_gpu_is_a_clear_error(fresh):
    fresh.setenv("ASR_DEVICE", "cuda")
    get_settings.cache_clear()
    with pytest.raises(ConfigError, match="ASR_DEVICE=cuda"):
        asr.get_model()


def test_a_compute_type_the_cpu_lacks_is_a_clear_error(fresh):
    fresh.setenv("ASR_COMPUTE_TYPE", "float16")
    fresh.setenv("ASR_DEVICE", "cpu")
    get_settings.cache_clear()
    with pytest.raises(ConfigError, match="float16 is not supported on cpu"):
        asr.get_model()


def test_explicit_cpu_threads_are_used(fresh):
    fresh.setenv("ASR_CPU_THREADS", "1")
    get_settings.cache_clear()
    asr.get_model()
    assert asr.get_model_config()["cpu_threads"] == 1
