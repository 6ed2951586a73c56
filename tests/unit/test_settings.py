from __future__ import annotations

from pathlib import Path

import pytest

from worker.pipeline.errors import ConfigError
from worker.pipeline.settings import Settings


def test_defaults_transcribe_with_tiny_en_on_auto_device():
    settings = Settings.from_env({})
    assert settings.enable_faster_whisper is True
    assert settings.model_id == "tiny.en"
    assert (settings.device, settings.compute_type) == ("auto", "auto")
    assert (settings.beam_size, settings.batch_size) == (5, 8)
    assert settings.cpu_threads == 0
    assert settings.audio_roots == ()
    assert settings.cache_dir.name == "models"


def test_values_are_parsed_and_normalised():
    settings = Settings.from_env(
        {
            "ENABLE_FASTER_WHISPER": "False",
            "ASR_MODEL_ID": "openai/whisper-base",
            "ASR_DEVICE": "CUDA",
            "ASR_DEVICE_INDEX": "1",
            "ASR_COMPUTE_TYPE": "int8_float16",
            "ASR_BEAM_SIZE": "2",
            "ASR_BATCH_SIZE": "12",
            "ASR_CACHE_DIR": "/tmp/models",
            "ASR_CPU_THREADS": "3",
            "ASR_MAX_AUDIO_SECONDS": "60.5",
            "ASR_MAX_FILE_BYTES": "1000",
            "ASR_AUDIO_ROOTS": "/srv/a:/srv/b",
        }
    )
    assert settings.enable_faster_whisper is False
    assert settings.device == "cuda" and settings.device_index == 1
    assert settings.compute_type == "int8_float16"
    assert (settings.beam_size, settings.batch_size, settings.cpu_threads) == (2, 12, 3)
    assert settings.cache_dir == Path("/tmp/models")
    assert settings.max_audio_seconds == 60.5 and settings.max_file_bytes == 1000
    assert settings.audio_roots == (Path("/srv/a"), Path("/srv/b"))


def test_blank_values_mean_the_default():
    assert Settings.from_env({"ASR_BEAM_SIZE": "  ", "ASR_DEVICE": ""}) == Settings.from_env({})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ENABLE_FASTER_WHISPER", "maybe"),
        ("ASR_DEVICE", "tpu"),
        ("ASR_COMPUTE_TYPE", "int4"),
        ("ASR_BEAM_SIZE", "0"),
        ("ASR_BEAM_SIZE", "five"),
        ("ASR_BATCH_SIZE", "-1"),
        ("ASR_CPU_THREADS", "-2"),
        ("ASR_DEVICE_INDEX", "-1"),
        ("ASR_MAX_AUDIO_SECONDS", "nan"),
        ("ASR_MAX_AUDIO_SECONDS", "-5"),
        ("ASR_MAX_FILE_BYTES", "1e9"),
        ("ASR_HARD_TIME_LIMIT", "abc"),
        ("ASR_SOFT_TIME_LIMIT", "-5"),
        ("ASR_SHUTDOWN_GRACE", "nan"),
        ("ASR_RESULT_EXPIRES", "a week"),
        ("CELERY_WORKER_PREFETCH_MULTIPLIER", "-1"),
    ],
)
def test_a_bad_value_names_its_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_settings_are_frozen():
    settings = Settings.from_env({})
    with pytest.raises(AttributeError):
        settings.beam_size = 1  # type: ignore[misc]


def test_deadline_scales_with_the_audio_and_can_be_switched_off():
    settings = Settings.from_env({"ASR_TIMEOUT_BASE": "60", "ASR_TIMEOUT_PER_AUDIO_SECOND": "0.5"})
    assert settings.deadline_for(3600) == 60 + 1800
    assert Settings.from_env({"ASR_TIMEOUT_PER_AUDIO_SECOND": "0"}).deadline_for(3600) is None


def test_delivery_cap_must_allow_one_delivery():
    assert Settings.from_env({"ASR_MAX_DELIVERIES": "5"}).max_deliveries == 5
    with pytest.raises(ConfigError, match="ASR_MAX_DELIVERIES"):
        Settings.from_env({"ASR_MAX_DELIVERIES": "0"})


def test_celery_settings_have_their_defaults_and_read_the_same_variables():
    settings = Settings.from_env({})
    assert settings.broker_url == settings.result_backend == "redis://localhost:6379/0"
    assert (settings.queue, settings.sentinel_master, settings.sentinel_password) == ("asr", "mymaster", "")
    assert (settings.soft_time_limit, settings.hard_time_limit) == (6 * 3600, 6 * 3600 + 600)
    assert (settings.visibility_timeout, settings.result_expires) == (7 * 3600, 7 * 24 * 3600)
    assert (settings.shutdown_grace, settings.proc_alive_timeout, settings.prefetch_multiplier) == (0, 300, 1)
    assert (settings.max_tasks_per_child, settings.max_memory_per_child) == (0, 0)
    read = Settings.from_env(
        {
            "REDIS_URL": "redis://r:1/0",
            "CELERY_RESULT_BACKEND": "redis://b:2/1",
            "REDIS_SENTINEL_PASSWORD": " pw ",
            "CELERY_WORKER_PREFETCH_MULTIPLIER": "0",
            "CELERY_WORKER_MAX_MEMORY_PER_CHILD": "2000.7",
        }
    )
    assert (read.broker_url, read.result_backend) == ("redis://r:1/0", "redis://b:2/1")
    assert read.sentinel_password == "pw" and "pw" not in repr(read)
    assert (read.prefetch_multiplier, read.max_memory_per_child) == (1, 2000)


def test_the_visibility_timeout_must_outlast_the_hard_time_limit():
    message = "ASR_VISIBILITY_TIMEOUT=60 must be longer than ASR_HARD_TIME_LIMIT=22200"
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({"ASR_VISIBILITY_TIMEOUT": "60"})
    no_limit = Settings.from_env({"ASR_VISIBILITY_TIMEOUT": "60", "ASR_HARD_TIME_LIMIT": "0"})
    assert no_limit.visibility_timeout == 60
