"""Webhook signing, payload encoding, retry policy and settings: pure logic, no services.

The receiver's verification code is read from docs/results.md and run here, so
the documented snippet is the one that is tested.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable

import pytest

from tests.helpers import load_verifier
from worker.pipeline.errors import ConfigError
from worker.pipeline.settings import Settings
from worker.tasks.webhooks import backoff, encode_payload, retryable, sign

SECRET = "s3cret-for-tests"

Verifier = Callable[..., bool]


@pytest.fixture(scope="module")
def verify() -> Verifier:
    return load_verifier()


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    body = b'{"task_id":"abc","state":"SUCCESS"}'
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1700000000, body) == f"sha256={expected}"


def test_documented_verifier_accepts_a_fresh_signed_request(verify: Verifier):
    body = encode_payload({"task_id": "abc", "state": "SUCCESS", "result": {"text": "hi"}})
    now = int(time.time())
    assert verify(SECRET, body, str(now), sign(SECRET, now, body))


@pytest.mark.parametrize(
    ("what", "change"),
    [
        ("tampered body", lambda body, ts, sig: (body.replace(b"SUCCESS", b"FAILURE"), ts, sig)),
        ("other timestamp", lambda body, ts, sig: (body, str(int(ts) + 1), sig)),
        ("no prefix", lambda body, ts, sig: (body, ts, sig.removeprefix("sha256="))),
        ("not a number", lambda body, ts, sig: (body, "yesterday", sig)),
    ],
)
def test_documented_verifier_rejects_forgeries(verify: Verifier, what: str, change):
    body = encode_payload({"task_id": "abc", "state": "SUCCESS"})
    now = int(time.time())
    assert not verify(SECRET, *change(body, str(now), sign(SECRET, now, body))), what


def test_documented_verifier_rejects_another_secret_and_old_requests(verify: Verifier):
    body = encode_payload({"task_id": "abc"})
    now = int(time.time())
    assert not verify("another-secret", body, str(now), sign(SECRET, now, body))
    old = now - 3600
    assert not verify(SECRET, body, str(old), sign(SECRET, old, body)), "a replay an hour later"
    assert verify(SECRET, body, str(old), sign(SECRET, old, body), tolerance=7200)


def test_payload_is_compact_utf8_json():
    body = encode_payload({"text": "café", "n": [1, 2]})
    assert body == '{"text":"café","n":[1,2]}'.encode()
    assert json.loads(body) == {"text": "café", "n": [1, 2]}


def test_backoff_doubles_from_the_base_and_is_capped():
    assert [backoff(n, 2.0) for n in range(1, 5)] == [2.0, 4.0, 8.0, 16.0]
    assert [backoff(n, 0.2) for n in (1, 2, 3)] == pytest.approx([0.2, 0.4, 0.8])
    assert backoff(30, 2.0) == 600.0


@pytest.mark.parametrize(
    ("status", "again"),
    [(None, True), (500, True), (503, True), (400, False), (404, False), (410, False), (301, False)],
)
def test_only_no_answer_and_5xx_are_retried(status, again):
    assert retryable(status) is again


def test_webhook_settings_defaults_and_values():
    default = Settings.from_env({})
    assert default.webhook_allowed_hosts == () and default.webhook_secret == ""
    assert (default.webhook_max_attempts, default.webhook_backoff_seconds) == (5, 2.0)
    assert (default.webhook_timeout, default.webhook_queue) == (10.0, "")
    settings = Settings.from_env(
        {
            "ASR_WEBHOOK_ALLOWED_HOSTS": " Hooks.Example.com , 127.0.0.1:8080,,[::1]:9000",
            "ASR_WEBHOOK_SECRET": SECRET,
            "ASR_WEBHOOK_MAX_ATTEMPTS": "3",
            "ASR_WEBHOOK_BACKOFF_SECONDS": "0.2",
            "ASR_WEBHOOK_TIMEOUT": "2.5",
            "ASR_WEBHOOK_QUEUE": "asr.webhooks",
        }
    )
    assert settings.webhook_allowed_hosts == ("hooks.example.com", "127.0.0.1:8080", "[::1]:9000")
    assert (settings.webhook_max_attempts, settings.webhook_backoff_seconds) == (3, 0.2)
    assert (settings.webhook_timeout, settings.webhook_queue) == (2.5, "asr.webhooks")
    assert settings.webhook_secret == SECRET
    assert SECRET not in repr(settings), "the secret must not reach logs through repr()"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"ASR_WEBHOOK_ALLOWED_HOSTS": "hooks.example.com"}, "ASR_WEBHOOK_SECRET"),
        (
            {"ASR_WEBHOOK_ALLOWED_HOSTS": "http://hooks.example.com", "ASR_WEBHOOK_SECRET": "x"},
            "ASR_WEBHOOK_ALLOWED_HOSTS",
        ),
        ({"ASR_WEBHOOK_ALLOWED_HOSTS": "h:99999", "ASR_WEBHOOK_SECRET": "x"}, "ASR_WEBHOOK_ALLOWED_HOSTS"),
        ({"ASR_WEBHOOK_ALLOWED_HOSTS": "user@h", "ASR_WEBHOOK_SECRET": "x"}, "ASR_WEBHOOK_ALLOWED_HOSTS"),
        ({"ASR_WEBHOOK_MAX_ATTEMPTS": "0"}, "ASR_WEBHOOK_MAX_ATTEMPTS"),
        ({"ASR_WEBHOOK_BACKOFF_SECONDS": "-1"}, "ASR_WEBHOOK_BACKOFF_SECONDS"),
        ({"ASR_WEBHOOK_TIMEOUT": "0"}, "ASR_WEBHOOK_TIMEOUT"),
    ],
)
def test_bad_webhook_settings_stop_the_worker_naming_the_variable(env, named):
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)
