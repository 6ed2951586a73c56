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
