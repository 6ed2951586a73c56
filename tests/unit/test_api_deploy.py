"""How the HTTP API is deployed: its compose service, its Dockerfile, its requirements and its CLI.

No Docker engine: the files are parsed (the compose file with PyYAML, as in test_compose.py)
and every command they run is checked against the real argument parser.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from producer.api.__main__ import _parser
from tests.helpers import (
    COMPOSE,
    ROOT,
    SECRETS,
    command_args,
    dockerfile_instructions,
    interpolate,
)

API_DOCKERFILE = ROOT / "docker" / "Dockerfile.api"
ENV = {**SECRETS, "AUDIO_DIR": "/srv/audio"}


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {name: interpolate(str(value), ENV) for name, value in service["environment"].items()}


def test_api_service_runs_the_api_cli(services: dict[str, dict[str, Any]]):
    api = services["api"]
    args = command_args(interpolate(api["command"], ENV))
    assert args[:3] == ["python", "-m", "producer.api"]
    parsed = _parser().parse_args(args[3:])
    assert (parsed.host, parsed.port, parsed.workers) == ("0.0.0.0", 8000, 1)
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "/healthz" in " ".join(api["healthcheck"]["test"])


def test_api_variables_are_read_by_the_api(services: dict[str, dict[str, Any]]):
    sources = " ".join(p.read_text() for p in (ROOT / "producer").rglob("*.py"))
    for name in _env(services["api"]):
        assert f'"{name}"' in sources, f"{name} is set on the api service but no code reads it"


def test_uploads_are_where_the_workers_read(services: dict[str, dict[str, Any]]):
    upload_dir = _env(services["api"])["ASR_UPLOAD_URL"]
    api_volumes = [interpolate(str(v), ENV).split(":") for v in services["api"]["volumes"]]
    assert [upload_dir, upload_dir] in [v[:2] for v in api_volumes], "the API must see uploads at their path"
    for name in ("worker", "worker-gpu"):
        roots = _env(services[name])["ASR_AUDIO_ROOTS"].split(":")
        mounts = {interpolate(str(v), ENV).split(":")[1] for v in services[name]["volumes"]}
        assert any(Path(upload_dir).is_relative_to(root) and root in mounts for root in roots), name


def test_api_dockerfile():
    instructions = dockerfile_instructions(API_DOCKERFILE)
    for keyword, args in instructions:
        if keyword == "COPY":
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), source
    copied = " ".join(args for keyword, args in instructions if keyword == "COPY")
    assert "worker" not in copied.split("/"), "the API image holds no worker code"
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users and users[-1] not in ("root", "0")
    (cmd,) = [args for keyword, args in instructions if keyword == "CMD"]
    args = yaml.safe_load(cmd)
    assert args[:3] == ["python", "-m", "producer.api"]
    _parser().parse_args(args[3:])


def test_api_requirements_match_requirements_txt():
    def ranges(path: Path) -> set[str]:
        return {
            line.strip() for line in path.read_text().splitlines() if line.strip() and line[0] not in "#-"
        }

    api = ranges(ROOT / "requirements-api.txt")
    assert api <= ranges(ROOT / "requirements.txt"), api - ranges(ROOT / "requirements.txt")
    assert {shlex.split(r)[0].split(">")[0] for r in api} >= {"fastapi", "uvicorn", "python-multipart"}
