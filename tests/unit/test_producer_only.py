"""A producer-only install works: the producer imports nothing of the worker or the model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("worker", "faster_whisper", "ctranslate2", "numpy", "av", "onnxruntime", "torch")


def test_the_producer_its_cli_and_its_http_api_import_no_worker_and_no_model_library():
    code = (
        # producer.api builds the app on import: every route module is loaded.
        "import sys, producer, producer.api, producer.cli, producer.client, asr_protocol.formats, "
        "producer.local; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_producer_requirements_hold_no_model_library():
    lines = (ROOT / "requirements-producer.txt").read_text().lower().splitlines()
    wanted = " ".join(line for line in lines if line.strip() and not line.startswith("#"))
    assert "celery[redis]" in wanted
    assert not any(name.replace("_", "-") in wanted for name in HEAVY)
