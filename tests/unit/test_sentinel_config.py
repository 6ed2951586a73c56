"""Sentinel URLs: the transport options workers (celeryconfig) and producers (producer.config) derive."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from producer.config import mask_url, sentinel_options
from tests.helpers import ROOT

URL = "sentinel://:pw@10.0.0.1:26379/0;sentinel://:pw@10.0.0.2:26379/0"


def test_sentinel_urls_get_the_master_name_and_other_urls_nothing():
    assert sentinel_options(URL, {}) == {"master_name": "mymaster"}
    assert sentinel_options(URL, {"REDIS_SENTINEL_MASTER": "asr"}) == {"master_name": "asr"}
    assert sentinel_options(URL, {"REDIS_SENTINEL_PASSWORD": "s3"})["sentinel_kwargs"] == {"password": "s3"}
    assert sentinel_options("redis://localhost:6379/0", {"REDIS_SENTINEL_MASTER": "asr"}) == {}


def test_every_password_of_a_sentinel_list_is_masked():
    assert "pw" not in mask_url(URL)


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
