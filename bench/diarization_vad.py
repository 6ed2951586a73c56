"""Diarization's voice activity detection chosen on development: Silero's threshold, and whether
raising quiet stretches before Silero hears them helps.

Silero's default threshold (0.5) missed quiet speakers: on the test conversations most of the
missed speech was one man's quiet, noisy recordings (docs/diarization.md). Development holds that
failure in its poor-microphone versions (``evaluation.conversations.poor_microphone``: one speaker
10-20 dB quieter under noise of their own), so each setting is scored on development's clean,
telephone, noisy and poor-microphone conversations together, with the count rules the worker has,
and the best by the diarization bench's objective (the mean exact-count rate, then the lower DER)
is kept. Test is scored with the kept setting and with Silero's default, side by side.

A setting is a threshold and a most gain (dB): with a gain, each stretch of the recording is
raised toward its loud speech (the 95th percentile of its 1 s levels) by at most that much, never
lowered (:func:`raised`). The window and the percentile were fixed before the search.

    python -m bench.diarization_vad          # writes bench/results/diarization_vad.json
    python -m bench.diarization_vad --quick  # one conversation per count: checks the bench runs
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.diarization import SEED, line, objective
from evaluation import conversations as built
from evaluation import diarization_eval as ev
from evaluation.scoring import ROOT

RESULTS = ROOT / "bench" / "results" / "diarization_vad.json"
THRESHOLDS = (0.5, 0.45, 0.4, 0.35, 0.3)
#: The most a stretch is raised (dB); 0: no raising.
GAINS_DB = (0.0, 6.0, 10.0)
#: Silero's own default, the setting before this choice.
DEFAULT = (0.5, 0.0)
LEVEL_WINDOW_SECONDS = 1.0
LEVEL_PERCENTILE = 95
CONDITIONS = (*built.CONDITIONS, "poor_mic")


def raised(audio: np.ndarray, max_gain_db: float) -> np.ndarray:
    """``audio`` with each stretch raised toward the recording's loud speech by at most
    ``max_gain_db`` (gain over 10 ms frames from the level of the second around each)."""
    hop = 160
    frames = len(audio) // hop
    if frames == 0 or max_gain_db <= 0:
        return audio
    power = np.mean(audio[: frames * hop].astype(np.float64).reshape(frames, hop) ** 2, axis=1)
    width = round(LEVEL_WINDOW_SECONDS * 100)
    level = np.sqrt(np.maximum(np.convolve(power, np.ones(width) / width, mode="same"), 1e-12))
    gain = np.clip(np.percentile(level, LEVEL_PERCENTILE) / level, 1.0, 10 ** (max_gain_db / 20))
    centres = np.arange(frames) * hop + hop / 2
    return (audio * np.interp(np.arange(len(audio)), centres, gain)).astype(np.float32)


def regions_of(threshold: float, gain_db: float) -> Callable[[np.ndarray], Any]:
    from worker.pipeline.diarization import speech_regions

    return lambda audio: speech_regions(raised(audio, gain_db), threshold=threshold)


def side_of(side: str, per_count: dict[int, int] | None) -> tuple[list[Any], list[str]]:
    """A side's conversations (every condition, then a poor-microphone version of each clean one)
    and, for each poor-microphone one, its weak speaker."""
    items = built.conversations(side, seed=SEED, per_count=per_count)
    poor = built.poor_microphones(items)
    return items + [c for c, _ in poor], [who for _, who in poor]


def measure(
    conversations: list[Any],
    weak: list[str],
    setting: tuple[float, float] | None = None,
    *,
    regions: Callable[[np.ndarray], Any] | None = None,
    added: Callable[[np.ndarray], Any] | None = None,
) -> dict[str, Any]:
    """The worker's count rules over the windows of VAD ``setting`` (or of ``regions``): rates over
    all conditions and each, and how much of the weak speakers' speech the VAD missed. ``added``:
    its speech that overlaps no turn becomes turns (:func:`turns_with`)."""
    from worker.pipeline.diarization import EVERY_WINDOW_RULES

    method = ev.rule_method(EVERY_WINDOW_RULES)  # nothing decoded here: the count from every window
    items = ev.embed(conversations, regions=regions or regions_of(*(setting or DEFAULT)))
    rows = [(i.conversation, ev.score(i, turns_with(i, method, added))) for i in items]
    out: dict[str, Any] = {"all": ev.count_rates(rows)}
    for condition in CONDITIONS:
        out[condition] = ev.count_rates([r for r in rows if r[0].condition == condition])
    poor = [i for i in items if i.conversation.condition == "poor_mic"]
    out["weak_speaker_missed_by_vad"] = ev.missed_by_vad(list(zip(poor, weak, strict=True)))
    return out


def turns_with(item: Any, method: ev.Method, added: Callable[[np.ndarray], Any] | None) -> list[Any]:
    """``item``'s turns; with ``added``, the stretches of its speech that overlap no turn become
    turns of their nearest speaker, as the worker does with the decoder's words (one window each;
    the count does not change)."""
    from worker.pipeline import diarization

    found = ev.found_of(item, method)
    if added is None:
        return list(found.turns)
    audio = item.conversation.audio
    stretches = diarization.stretches_outside(added(audio), [(t.start, t.end) for t in found.turns])
    if not stretches:
        return list(found.turns)
    return list(diarization.with_stretches(found, diarization.embed_stretches(audio, stretches)).turns)


def _key(setting: tuple[float, float]) -> str:
    return f"{setting[0]}/{setting[1]:g}dB"


def _show(key: str, summary: dict[str, Any]) -> None:
    print(f"{key}: weak speaker missed by the VAD {summary['weak_speaker_missed_by_vad']} %")
    for condition in ("all", *CONDITIONS):
        print(line(condition, summary[condition]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one conversation per count")
    args = parser.parse_args(argv)
    os.environ.setdefault("ASR_DEVICE", "cpu")
    from worker.pipeline.diarization import VAD_THRESHOLD, warm_encoder

    warm_encoder()
    per_count = dict.fromkeys(built.PER_COUNT, 1) if args.quick else None
    settings = [(t, g) for g in GAINS_DB for t in THRESHOLDS]
    started = time.perf_counter()
    dev, dev_weak = side_of("dev", per_count)
    grid = {}
    for setting in settings:
        grid[_key(setting)] = measure(dev, dev_weak, setting)
        _show(f"development {_key(setting)}", grid[_key(setting)])
    # Ties to the earlier setting: no raising (or less), then the higher threshold.
    kept = max(settings, key=lambda s: (objective(grid[_key(s)]["all"]), -settings.index(s)))
    print(f"kept on development: threshold {kept[0]}, most gain {kept[1]:g} dB")
    if kept != (VAD_THRESHOLD, 0.0):
        print(f"NOTE: the worker runs threshold {VAD_THRESHOLD} without raising; development chose {kept}")
    test, test_weak = side_of("test", per_count)
    compared = {_key(s): measure(test, test_weak, s) for s in dict.fromkeys((kept, DEFAULT))}
    for key, summary in compared.items():
        _show(f"test {key}", summary)
    print(f"{time.perf_counter() - started:.0f} s")
    if not args.quick:
        results = {"seed": SEED, "development": grid, "kept": _key(kept), "test": compared}
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
