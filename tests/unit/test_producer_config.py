from __future__ import annotations

import pytest

from producer.config import ProducerSettings, mask_url


def test_redis_url_sets_both_and_specific_variables_override():
    read = ProducerSettings.from_env({"REDIS_URL": "redis://r:6379/0"})
    assert read.broker_url == read.backend_url == read.redis_url == "redis://r:6379/0"
    env = {
        "REDIS_URL": "redis://r:6379/0",
        "CELERY_BROKER_URL": "redis://b/0",
        "CELERY_RESULT_BACKEND": "redis://c/1",
    }
    read = ProducerSettings.from_env(env)
    assert (read.broker_url, read.backend_url) == ("redis://b/0", "redis://c/1")
    assert ProducerSettings.from_env({}).broker_url == "redis://localhost:6379/0"
    assert ProducerSettings.from_env({}).redis_url == ""


def test_default_queue_visibility_timeout_and_upload_target():
    assert ProducerSettings.from_env({}).queue == "asr"
    assert ProducerSettings.from_env({"ASR_QUEUE": "asr.gpu"}).queue == "asr.gpu"
    assert ProducerSettings.from_env({}).visibility_timeout == 7 * 3600
    assert ProducerSettings.from_env({"ASR_VISIBILITY_TIMEOUT": "900"}).visibility_timeout == 900
    assert ProducerSettings.from_env({"ASR_UPLOAD_URL": " s3://b/up/ "}).upload_url == "s3://b/up/"
    with pytest.raises(ValueError, match="ASR_VISIBILITY_TIMEOUT"):
        ProducerSettings.from_env({"ASR_VISIBILITY_TIMEOUT": "soon"})


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:s3cret@host:6379/0", "redis://host:6379/0"),
        ("rediss://user:p%40ss@host:6380/1?ssl_cert_reqs=required", "rediss://host:6380/1?***"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("amqp://guest:guest@localhost:5672//", "amqp://localhost:5672//"),
    ],
)
def test_mask_url_hides_passwords(url, masked):
    assert mask_url(url) == masked
