"""Diarization on a real call that no choice saw: pyannote.audio's sample (evaluation.heldout).

Two women on the telephone, 30 s, human RTTM turns. The split of bench.diarization chose every
constant on its development speakers; this recording is in neither side, so its figures are a
held-out check of the kept method on real conversational telephone speech (one recording:
indicative, not a rate). Reported: the speakers found, DER (collar 0.25 s) with its parts, and the
decoder's words given to the right speaker, for the worker's job (the count from the windows that
hold a word, the words the VAD missed made turns), the count from every window, the VAD's turns
alone, and the count given (``num_speakers=2``).

    python -m evaluation.heldout            # fetch the recording once
    python -m bench.diarization_heldout     # writes bench/results/diarization_heldout.json
"""

from __future__ import annotations

import json
import os
from typing import Any

from bench.diarization import _read, _transcripts, der_figures
from evaluation import conversations as built
from evaluation import diarization_eval as ev
from evaluation import heldout
from evaluation.scoring import ROOT
from evaluation.speakers import rttm_turns

RESULTS = ROOT / "bench" / "results" / "diarization_heldout.json"


def given(count: int) -> ev.Method:
    """The worker's clustering with the count given."""
    from worker.pipeline.diarization import cluster

    return lambda windows, words: cluster(windows.embeddings, num_speakers=count)


def main() -> int:
    call = heldout.available()
    if call is None:
        print("the held-out call is not fetched: python -m evaluation.heldout")
        return 2
    os.environ.setdefault("ASR_DEVICE", "cpu")
    from worker.pipeline.diarization import COUNT_RULES, EVERY_WINDOW_RULES, warm_encoder

    warm_encoder()
    truth = rttm_turns(call.with_suffix(".rttm"))
    conversation = built.Conversation("pyannote_sample", "real", _read(call), truth, (), ())
    plain = ev.embed([conversation])[0]
    segments = _transcripts([plain])
    job = ev.with_words([plain], segments, job=True)[0]
    ways = {
        "kept: the job (count from the windows that hold a word)": (
            ev.rule_method(COUNT_RULES, heard=True),
            job,
        ),
        "the job, count from every window": (ev.rule_method(EVERY_WINDOW_RULES), job),
        "the VAD's turns alone, count from every window": (ev.rule_method(EVERY_WINDOW_RULES), plain),
        "the job, num_speakers=2 given": (given(2), job),
    }
    results: dict[str, Any] = {
        "recording": f"{heldout.WHEEL}: {heldout.MEMBER}.wav",
        "seconds": round(len(conversation.audio) / 16000, 1),
        "band": plain.windows.band,
        "windows": len(plain.windows.embeddings),
        "ways": {},
    }
    for label, (method, item) in ways.items():
        turns, _ = ev.turns_of(item, method)
        figures = der_figures(truth, turns)
        right, scored = ev.word_rate(item, turns, segments[0])
        figures["words_right"] = round(100 * right / max(scored, 1), 1)
        figures["words"] = scored
        results["ways"][label] = figures
        print(f"{label}: {figures}")
    found = results["ways"][next(iter(ways))]
    print(
        f"held out ({results['band']}band, {results['seconds']} s): {found['speakers_found']} of "
        f"{found['speakers_true']} speakers, DER {found['der']} %, words {found['words_right']} %"
    )
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
