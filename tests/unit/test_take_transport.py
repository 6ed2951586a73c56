"""Which connections of a worker take jobs with the atomic take (worker.runtime.take).

``take_atomically`` points kombu's ``redis``, ``rediss`` and ``sentinel`` schemes at the
take's transports; these tests give it a copy of kombu's tables, so nothing leaks out.
"""

from __future__ import annotations

from collections.abc import Iterator

import kombu.transport
import pytest
from kombu import Connection

from worker.pipeline.settings import get_settings
from worker.runtime import take


@pytest.fixture()
def tables(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.setattr(kombu.transport, "TRANSPORT_ALIASES", dict(kombu.transport.TRANSPORT_ALIASES))
    monkeypatch.setattr(kombu.transport, "_transport_cache", dict(kombu.transport._transport_cache))
    monkeypatch.delenv("ASR_TAKE_POLL_SECONDS", raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_redis_rediss_and_sentinel_urls_take_atomically(tables: pytest.MonkeyPatch):
    before = Connection("redis://127.0.0.1:6379/0").transport  # resolved and cached first, as on import
    assert type(before).__module__ == "kombu.transport.redis"
    take.take_atomically()
    assert type(Connection("redis://127.0.0.1:6379/0").transport) is take.Transport
    assert type(Connection("sentinel://s1:26379/0;sentinel://s2:26379/0").transport) is take.SentinelTransport
    tls = Connection("rediss://redis:6380/0")
    assert type(tls.transport) is take.Transport
    assert tls.ssl, "a rediss URL keeps kombu's TLS defaults"
    assert type(Connection("memory://").transport).__module__ == "kombu.transport.memory"


def test_a_failover_to_the_next_url_keeps_the_take(tables: pytest.MonkeyPatch):
    take.take_atomically()
    connection = Connection("sentinel://s1:26379/0;sentinel://s2:26379/0")
    connection.maybe_switch_next()  # what kombu does when a connection attempt fails
    assert connection.hostname == "s2"
    assert type(connection.transport) is take.SentinelTransport


def test_a_poll_of_zero_keeps_kombu_s_brpop(tables: pytest.MonkeyPatch):
    tables.setenv("ASR_TAKE_POLL_SECONDS", "0")
    take.take_atomically()
    assert type(Connection("redis://127.0.0.1:6379/0").transport).__module__ == "kombu.transport.redis"
