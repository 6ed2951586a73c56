"""A worker's configuration: bad values stop it at start; ASR can be switched off."""

from __future__ import annotations

import pytest

from producer import Client, TranscriptionFailed
from producer.local import LocalStack
from tests.helpers import audio_file, start_worker

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ASR_DEVICE", "cuda", "ASR_DEVICE=cuda but NVML finds no NVIDIA GPU"),
        ("ASR_BEAM_SIZE", "0", "ASR_BEAM_SIZE='0' must be at least 1"),
        ("ASR_COMPUTE_TYPE", "int3", "ASR_COMPUTE_TYPE='int3' is not one of"),
        ("ASR_MODEL_ID", "/nonexistent/model-dir", "could not be downloaded into ASR_CACHE_DIR"),
    ],
)
def test_an_unusable_setting_stops_the_worker_at_start_naming_it(stack: LocalStack, name, value, message):
    done = start_worker(stack.url, **{name: value, "HF_HUB_OFFLINE": "1"})
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "worker cannot start" in output and message in output, output[-3000:]
    assert output.count(message) == 1, "said once"
    assert "Whisper model ready" not in output, "no child may start (and crash-loop)"


def test_disabled_asr_refuses_jobs_with_a_clear_error(redis_server_binary):
    with LocalStack(concurrency=1, env={"ENABLE_FASTER_WHISPER": "false"}) as disabled:
        client = Client(disabled.url, disabled.url)
        try:
            with pytest.raises(TranscriptionFailed) as caught:
                client.transcribe(audio_file("jfk.flac"), timeout=60)
        finally:
            client.close()
        assert caught.value.error_type == "ModelUnavailableError"
        assert "ENABLE_FASTER_WHISPER=false" in caught.value.message
        assert "Whisper model ready" not in disabled.log_path.read_text()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ASR_HARD_TIME_LIMIT": "abc"}, "ASR_HARD_TIME_LIMIT='abc' is not a number"),
        ({"ASR_SOFT_TIME_LIMIT": "-5"}, "ASR_SOFT_TIME_LIMIT='-5' must be at least 0"),
        (
            {"ASR_VISIBILITY_TIMEOUT": "60"},
            "ASR_VISIBILITY_TIMEOUT=60 must be longer than ASR_HARD_TIME_LIMIT",
        ),
    ],
)
def test_bad_celery_settings_stop_the_worker_at_start(stack: LocalStack, env, message):
    done = start_worker(stack.url, **env)
    assert done.returncode != 0
    assert message in done.stdout + done.stderr
