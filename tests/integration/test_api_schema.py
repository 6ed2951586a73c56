"""Every operation of the HTTP API answers as its OpenAPI document says (schemathesis).

Requests generated from ``/openapi.json`` (a fixed seed, a bounded number per
operation) go to a real API server with a valid key, on a real Redis, in front of a
real worker. Five checks run on every answer: no 5xx, only documented status codes,
bodies and content types as documented, and no answer without a valid key where the
document asks for one (each operation is also called without a key and with a wrong one).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from producer.api.app import create_app
from producer.api.local import ApiServer, server_env
from producer.local import LocalStack
from tests.helpers import wait_until, worker_stack

pytestmark = pytest.mark.integration

KEY = "schema-key"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
    ignored_auth,
]
#: Requests per operation: enough to reach every documented answer of the cheap ones,
#: few enough that the run takes a few minutes on CI's two cores.
EXAMPLES = 12


@pytest.fixture(scope="module")
def schema_stack(tmp_path_factory: pytest.TempPathFactory, redis_server_binary: str) -> Iterator[LocalStack]:
    # Its own worker: the fuzzer's jobs (bad paths, bytes that are not audio) fail there.
    with worker_stack(tmp_path_factory, "schema-worker") as running:
        yield running


@pytest.fixture(scope="module")
def schema_api(schema_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    folder: Path = tmp_path_factory.mktemp("schema-api")
    (folder / "uploads").mkdir()
    # Long enough for any generated upload to be decoded (or refused) by the worker: never a 504.
    env = server_env(folder / "uploads", keys=KEY, ASR_API_WAIT_SECONDS="120")
    with ApiServer(schema_stack.url, folder / "api.log", **env) as server:
        # Fuzz a ready service: the API sees the worker on its queue (and its model).
        wait_until(
            lambda: requests.get(f"{server.url}/readyz", timeout=10).status_code == 200,
            120,
            "the API never saw the worker",
        )
        yield server


#: The document the server serves (``test_the_server_serves_this_document`` checks it is the same):
#: built here, at collection, because schemathesis parametrizes the test by its operations.
DOCUMENT = create_app().openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_the_server_serves_this_document(schema_api: ApiServer):
    served = requests.get(f"{schema_api.url}/openapi.json", timeout=30)
    assert served.status_code == 200
    assert served.json() == DOCUMENT
    assert len(DOCUMENT["paths"]) >= 10


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case: schemathesis.Case, schema_api: ApiServer) -> None:
    checks = CHECKS
    if case.operation.path == "/readyz":
        # Its documented 503 (a Readiness body) is what a readiness probe is for, not a server
        # error: a worker slow to answer on a loaded machine may make it say "not ready".
        # status_code_conformance still fails any other 5xx.
        checks = [check for check in CHECKS if check is not not_a_server_error]
    case.call_and_validate(
        base_url=schema_api.url, headers={"Authorization": f"Bearer {KEY}"}, checks=checks, timeout=150
    )
