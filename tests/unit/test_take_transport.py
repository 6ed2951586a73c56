"""Which broker URLs the worker takes jobs from with the atomic take (worker.runtime.take)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from worker.pipeline.settings import get_settings
from worker.runtime.take import transport_for


@pytest.fixture()
def poll(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("url", "use_ssl", "expected"),
    [
        ("redis://127.0.0.1:6379/0", False, "worker.runtime.take:Transport"),
        ("REDIS://:secret@redis:6379/1", False, "worker.runtime.take:Transport"),
        ("sentinel://s1:26379/0;sentinel://s2:26379/0", False, "worker.runtime.take:SentinelTransport"),
        # kombu gives a rediss URL its TLS defaults only when it picks the transport itself.
        ("rediss://redis:6380/0", True, "worker.runtime.take:Transport"),
        ("rediss://redis:6380/0", False, None),
        ("amqp://guest:guest@rabbit:5672//", False, None),
        ("memory://", False, None),
    ],
)
def test_redis_and_sentinel_urls_take_atomically(
    poll: pytest.MonkeyPatch, url: str, use_ssl: bool, expected: str | None
):
    poll.delenv("ASR_TAKE_POLL_SECONDS", raising=False)
    assert transport_for(url, use_ssl=use_ssl) == expected


def test_a_poll_of_zero_keeps_kombu_s_brpop(poll: pytest.MonkeyPatch):
    poll.setenv("ASR_TAKE_POLL_SECONDS", "0")
    assert transport_for("redis://127.0.0.1:6379/0", use_ssl=False) is None
    assert transport_for("sentinel://s1:26379/0", use_ssl=False) is None
