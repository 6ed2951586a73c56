"""The private redis-server of the quick start and the tests: a port that never answers is left behind."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from producer.local import RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture()
def silent_port() -> Iterator[int]:
    """A port where something listens and never answers, as a stuck server would."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_picked_port_that_never_answers_is_given_up_for_another(redis_server_binary, silent_port):
    server = RedisServer()
    server.port = silent_port  # as if the free port had been taken between the pick and the start
    try:
        server.start()
        assert server.port != silent_port and server.ping()
        assert f":{server.port}/0" in server.url
    finally:
        server.stop()


def test_a_port_the_caller_chose_fails_with_the_servers_own_words(redis_server_binary, silent_port):
    server = RedisServer(port=silent_port)
    with pytest.raises(RuntimeError, match="redis-server exited") as failure:
        server.start()
    assert "Address already in use" in str(failure.value), "the server's log tells why"
    server.stop()
