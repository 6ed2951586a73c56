"""The contract between producer and worker: neither imports the other; they meet in asr_protocol.

Every module of the three packages is read (not imported) and each ``import`` and
``from ... import`` in it, lazy ones inside functions included, is checked.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from asr_protocol import names, options, redact, states
from tests.helpers import ROOT, dockerfile_instructions

#: Which top-level packages each side may not import.
FORBIDDEN = {
    "producer": {"worker"},
    "worker": {"producer"},
    "asr_protocol": {"producer", "worker"},
}


def _imports(path: Path, package: str) -> list[tuple[int, str]]:
    """``(line, top-level package)`` of every import in ``path`` (a module of ``package``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, package if node.level else (node.module or "").split(".")[0]))
    return found


def _crossings(package: str, root: Path = ROOT) -> list[str]:
    return [
        f"{path.relative_to(root)}:{line} imports {target}"
        for path in sorted((root / package).rglob("*.py"))
        for line, target in _imports(path, package)
        if target in FORBIDDEN[package]
    ]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_module_imports_across_the_contract(package):
    assert list((ROOT / package).rglob("*.py")), f"no modules under {package}/"
    assert _crossings(package) == []


def test_the_check_sees_lazy_and_plain_imports(tmp_path):
    (tmp_path / "producer" / "api").mkdir(parents=True)
    (tmp_path / "producer" / "api" / "x.py").write_text("def f():\n    from worker.runtime import hooks\n")
    (tmp_path / "producer" / "y.py").write_text("import os\nimport worker.tasks\nfrom . import z\n")
    assert _crossings("producer", tmp_path) == [
        "producer/api/x.py:2 imports worker",
        "producer/y.py:2 imports worker",
    ]


def _copied_packages(dockerfile: Path) -> set[str]:
    copies = [args.split() for keyword, args in dockerfile_instructions(dockerfile) if keyword == "COPY"]
    return {
        source.strip("/")
        for parts in copies
        for source in parts[:-1]
        if not source.startswith("--") and (ROOT / source.strip("/") / "__init__.py").exists()
    }


@pytest.mark.parametrize("dockerfile", sorted((ROOT / "docker").glob("Dockerfile*")), ids=lambda p: p.name)
def test_every_image_carries_the_protocol_and_what_its_code_imports(dockerfile: Path):
    packages = _copied_packages(dockerfile)
    assert "asr_protocol" in packages
    first_party = set(FORBIDDEN)
    missing = [
        f"{path.relative_to(ROOT)}:{line} imports {target}"
        for package in packages & first_party
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, target in _imports(path, package)
        if target in first_party - packages
    ]
    assert missing == []
    if dockerfile.name == "Dockerfile.api":
        assert packages == {"producer", "asr_protocol"}


def test_the_option_names_are_the_workers_options():
    from worker.pipeline.options import TranscribeOptions

    assert {field.name for field in dataclasses.fields(TranscribeOptions)} == set(options.OPTION_NAMES)
    assert options.WHOLE_JOB_OPTIONS <= options.OPTION_NAMES
    assert not options.PRODUCER_OPTIONS & options.OPTION_NAMES


def test_the_task_names_are_the_ones_the_worker_registers():
    from worker.celery import app

    app.loader.import_default_modules()
    sent = {value for key, value in vars(names).items() if key.endswith(("_TASK", "_TASK_NAME"))}
    assert sent <= set(app.tasks)


def test_states_split_into_pending_and_ended():
    assert not states.PENDING_STATES & states.ENDED_STATES
    assert states.PROGRESS in states.PENDING_STATES


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "Error 111 connecting to redis://:pw@10.0.0.9:6379/0. Connection refused.",
            "Error 111 connecting to redis://10.0.0.9:6379/0. Connection refused.",
        ),
        ("fetch 'https://h/a.wav?X-Amz-Signature=s' failed", "fetch 'https://h/a.wav?***' failed"),
        ("no URL here", "no URL here"),
    ],
)
def test_urls_inside_a_message_are_masked(text, shown):
    assert redact.mask_text(text) == shown
