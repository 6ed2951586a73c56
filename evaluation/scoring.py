"""Word error rate as Whisper's evaluations score it, and the real speech with references to score on.

WER is ``jiwer``'s, after ``whisper-normalizer``'s ``EnglishTextNormalizer`` on both
sides (it spells numbers, ``Mr``/``mister`` and contractions alike). Tags of the
references (``<VOCNOISE>``, ``[adif]``) are dropped first: no decoder writes them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

__all__ = ["EVAL_DIR", "Errors", "errors", "eval_corpus", "normalise", "word_error_rate"]

ROOT = Path(__file__).resolve().parent.parent
#: Real speech with references (``../shared/audio/eval/README.md``).
EVAL_DIR = ROOT.parent / "shared" / "audio" / "eval"
_TAGS = re.compile(r"<[^>]*>|\[[^\]]*\]")


@cache
def _normaliser():  # type: ignore[no-untyped-def]
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalise(text: str) -> str:
    """``text`` as Whisper's evaluations compare it: tags dropped, then the English normaliser."""
    return " ".join(_normaliser()(_TAGS.sub(" ", text)).split())


@dataclass(frozen=True)
class Errors:
    """Word errors of one hypothesis against its reference; they add up across files."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    words: int = 0  #: words of the reference

    def __add__(self, other: Errors) -> Errors:
        return Errors(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.words + other.words,
        )

    @property
    def wer(self) -> float:
        return (self.substitutions + self.deletions + self.insertions) / max(1, self.words)


def errors(reference: str, hypothesis: str) -> Errors:
    """Substitutions, deletions and insertions of ``hypothesis``, both sides normalised."""
    import jiwer

    ref, hyp = normalise(reference), normalise(hypothesis)
    if not ref:
        return Errors(insertions=len(hyp.split()))
    if not hyp:
        return Errors(deletions=len(ref.split()), words=len(ref.split()))
    out = jiwer.process_words(ref, hyp)
    return Errors(out.substitutions, out.deletions, out.insertions, len(ref.split()))


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, after :func:`normalise`."""
    return errors(reference, hypothesis).wer


def eval_corpus() -> dict[Path, str]:
    """Each recording of ``../shared/audio/eval`` that has a reference, with it; empty when absent."""
    path = EVAL_DIR / "references.json"
    if not path.is_file():
        return {}
    return {EVAL_DIR / name: text for name, text in sorted(json.loads(path.read_text()).items())}
