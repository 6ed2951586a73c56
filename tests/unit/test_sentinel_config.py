"""Sentinel URLs: the transport options workers (celeryconfig) and producers (producer.config) derive."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from unittest import mock

import pytest

from asr_protocol.sentinel import sentinel_options
from producer.config import ProducerSettings, mask_url, parse_sentinel_url
from tests.helpers import ROOT
from worker.pipeline.settings import Settings

URL = "sentinel://:pw@10.0.0.1:26379/0;sentinel://:pw@10.0.0.2:26379/0"


def test_sentinel_urls_get_the_master_name_and_other_urls_nothing():
    def options(url: str, env: dict[str, str]) -> dict[str, object]:
        return ProducerSettings.from_env(env).sentinel_options(url)

    assert options(URL, {}) == {"master_name": "mymaster"}
    assert options(URL, {"REDIS_SENTINEL_MASTER": "asr"}) == {"master_name": "asr"}
    assert options(URL, {"REDIS_SENTINEL_PASSWORD": "s3"})["sentinel_kwargs"] == {"password": "s3"}
    assert options("redis://localhost:6379/0", {"REDIS_SENTINEL_MASTER": "asr"}) == {}


def test_workers_and_producers_pass_the_same_sentinel_options():
    env = {"REDIS_URL": URL, "REDIS_SENTINEL_MASTER": "asr", "REDIS_SENTINEL_PASSWORD": "s3"}
    worker = Settings.from_env(env)
    producer = ProducerSettings.from_env(env)
    assert sentinel_options(URL, worker.sentinel_master, worker.sentinel_password) == (
        producer.sentinel_options(URL)
    ) == {"master_name": "asr", "sentinel_kwargs": {"password": "s3"}}


def test_every_password_of_a_sentinel_list_is_masked():
    assert mask_url(URL) == "sentinel://10.0.0.1:26379/0;sentinel://10.0.0.2:26379/0"


def test_celeryconfig_passes_the_master_name_to_broker_and_backend():
    env = {**os.environ, "REDIS_URL": URL, "REDIS_SENTINEL_MASTER": "asr-master"}
    code = (
        "import json, celeryconfig as c; "
        "print(json.dumps([c.broker_transport_options, c.result_backend_transport_options]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    broker, backend = json.loads(out.stdout)
    assert broker["master_name"] == backend["master_name"] == "asr-master"
    assert broker["visibility_timeout"] == backend["visibility_timeout"]


def test_a_sentinel_url_is_read_as_celery_reads_it():
    settings = ProducerSettings.from_env(
        {"REDIS_SENTINEL_MASTER": "asr", "REDIS_SENTINEL_PASSWORD": "sentinel-pw"}
    )
    parsed = parse_sentinel_url("sentinel://:p%40w@10.0.0.1:26379/2;sentinel://10.0.0.2:26380/2", settings)
    assert parsed.sentinels == [("10.0.0.1", 26379), ("10.0.0.2", 26380)]
    assert (parsed.db, parsed.username, parsed.password) == (2, None, "p@w")
    assert parsed.master_name == "asr" and parsed.sentinel_kwargs == {"password": "sentinel-pw"}
    bare = parse_sentinel_url("sentinel://10.0.0.1", ProducerSettings())
    assert bare.sentinels == [("10.0.0.1", 26379)] and bare.db == 0 and bare.password is None
    assert bare.master_name == "mymaster" and bare.sentinel_kwargs == {}


@pytest.mark.parametrize("url", ["redis://localhost:6379/0", "sentinel://:pw@/0"])
def test_what_is_not_a_sentinel_url_is_refused_without_its_password(url: str):
    with pytest.raises(ValueError) as raised:
        parse_sentinel_url(url, ProducerSettings())
    assert "pw" not in str(raised.value)


def test_the_api_asks_the_sentinels_for_the_master_they_name():
    from producer.api.service import async_redis

    env = {"REDIS_SENTINEL_MASTER": "asr-master"}
    with mock.patch.dict(os.environ, env):
        client = async_redis("sentinel://:pw@10.0.0.1:26379/3;sentinel://:pw@10.0.0.2:26380/3")
    pool = client.connection_pool
    assert pool.service_name == "asr-master"  # type: ignore[attr-defined]
    assert pool.connection_kwargs["db"] == 3 and pool.connection_kwargs["password"] == "pw"
    sentinels = pool.sentinel_manager.sentinels  # type: ignore[attr-defined]
    assert [s.connection_pool.connection_kwargs["port"] for s in sentinels] == [26379, 26380]
