from __future__ import annotations

import pytest

from producer.config import backend_url, broker_url, default_queue, mask_url, visibility_timeout


def test_redis_url_sets_both_and_specific_variables_override():
    env = {"REDIS_URL": "redis://r:6379/0"}
    assert broker_url(env) == backend_url(env) == "redis://r:6379/0"
    env |= {"CELERY_BROKER_URL": "redis://b/0", "CELERY_RESULT_BACKEND": "redis://c/1"}
    assert (broker_url(env), backend_url(env)) == ("redis://b/0", "redis://c/1")
    assert broker_url({}) == "redis://localhost:6379/0"


def test_default_queue_and_visibility_timeout():
    assert default_queue({}) == "asr" and default_queue({"ASR_QUEUE": "asr.gpu"}) == "asr.gpu"
    assert visibility_timeout({}) == 7 * 3600 and visibility_timeout({"ASR_VISIBILITY_TIMEOUT": "900"}) == 900


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
