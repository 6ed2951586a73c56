"""Speaker diarization on recordings the method never saw: count, DER, words, names, and time added.

Conversations of 2-6 speakers are built from the distinct real speakers of
``../shared/audio`` (``evaluation/speakers.py``, ``evaluation/conversations.py``): clean,
telephone (8 kHz, G.711 mu-law) and noisy (10-20 dB SNR) versions. Speakers are split
into development and test (seeded): every constant is chosen on development, figures
are reported on test. Two counts are compared: the worker's (an average-linkage cut at a
cosine distance bounds the count, the best silhouette picks it) and NME-SC (the largest
eigengap of a self-tuned binarised affinity, ``evaluation/nme_sc.py``).

DER: ``pyannote.metrics``, 0.25 s collar, pooled (total error over total speech). Words to
the right speaker: tiny.en's words (the worker's transcribe path) on each clean test conversation,
each given the speaker of the turn it overlaps most, against the truth speaker under DER's
optimal mapping. Known speakers: every conversation is given the references (speech kept
out of every conversation) of all speakers of its side that have one, present or not;
the match threshold is chosen on development. The real AMI meeting and falcon recording
are scored against their RTTM. The job's time: tiny.en on the CPU over the 60 s AMI
meeting, plain and with ``diarize=true``, alternated, median of 3.

    python -m bench.diarization            # prints figures, writes bench/results/diarization.json
    python -m bench.diarization --quick    # a few conversations: checks the bench runs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from evaluation import conversations as built
from evaluation import diarization_eval as ev
from evaluation.diarization_scores import der_parts
from evaluation.scoring import EVAL_DIR, ROOT
from evaluation.speakers import rttm_turns, speakers

RESULTS = ROOT / "bench" / "results" / "diarization.json"
#: The constants searched on development.
THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4)
TIES = (0.0, 0.01, 0.03)
#: Clusters of fewer windows join their nearest (1: none do).
MIN_WINDOWS = (1, 2, 3)
#: The count's constants before they were chosen here (0.3 tuned on two files), run on test beside.
FIXED = {"threshold": 0.3, "tie": 0.01, "min_windows": 1}
NEIGHBOUR_FRACTIONS = (0.25, 0.5)
MATCH_THRESHOLDS = tuple(round(0.6 + 0.025 * i, 3) for i in range(15))
#: The largest share of phrases named wrongly a match threshold may have on development (under
#: 2 %, the target; it was 1 %, which on levelled embeddings left only 0.9: nothing named on test).
MAX_WRONG_NAMES = 1.99
SEED = 0


def _read(path: Path) -> np.ndarray:
    from worker.pipeline.audio import decode_tracks

    tracks, _ = decode_tracks(path, None)
    return tracks[0]


def _objective(summary: dict[str, Any]) -> tuple[float, float]:
    """Higher is better: the mean exact-count rate of both groups, then the lower DER."""
    rates = [summary[k] for k in ("count_exact_2_3", "count_exact_4_6") if summary[k] is not None]
    return float(np.mean(rates)), -summary["der"]


def _rows(items: list[ev.Embedded], method: ev.Method) -> list[tuple[Any, Any, Any]]:
    out = []
    for item in items:
        turns, _ = ev.turns_of(item, method)
        out.append((item, turns, ev.score(item, turns)))
    return out


def _summaries(rows: list[tuple[Any, Any, Any]]) -> dict[str, Any]:
    out = {"all": ev.count_rates([(item.conversation, s) for item, _, s in rows])}
    for condition in built.CONDITIONS:
        out[condition] = ev.count_rates(
            [(item.conversation, s) for item, _, s in rows if item.conversation.condition == condition]
        )
    return out


def choose(dev: list[ev.Embedded]) -> dict[str, Any]:
    """Each method's constants chosen on development, with every setting's development figures."""
    grid: dict[str, dict[str, Any]] = {}
    for threshold in THRESHOLDS:
        for tie in TIES:
            for smallest in MIN_WINDOWS:
                rows = _rows(dev, ev.threshold_method(threshold, tie, smallest))
                entry = {"threshold": threshold, "tie": tie, "min_windows": smallest}
                key = f"threshold {threshold} tie {tie} min {smallest}"
                grid[key] = entry | {"dev": _summaries(rows)["all"]}
    for fraction in NEIGHBOUR_FRACTIONS:
        rows = _rows(dev, ev.nme_sc_method(fraction))
        grid[f"nme_sc p<={fraction}n"] = {"fraction": fraction, "dev": _summaries(rows)["all"]}
    best_threshold = max(
        (k for k in grid if k.startswith("threshold")), key=lambda k: _objective(grid[k]["dev"])
    )
    best_nme = max((k for k in grid if k.startswith("nme")), key=lambda k: _objective(grid[k]["dev"]))
    return {"grid": grid, "threshold": best_threshold, "nme_sc": best_nme}


def _method(grid: dict[str, Any], key: str) -> ev.Method:
    entry = grid[key]
    if "fraction" in entry:
        return ev.nme_sc_method(entry["fraction"])
    return ev.threshold_method(entry["threshold"], entry["tie"], entry["min_windows"])


def _transcripts(items: list[ev.Embedded]) -> list[list[dict[str, Any]]]:
    """tiny.en's segments (with word timings) of each item's clean version, by the worker's transcribe
    path: the versions share one timeline, and decoding each (three times the time) would measure the
    decoder's errors on telephone speech rather than where the speakers change."""
    from worker.asr import get_model
    from worker.pipeline.diarize_job import decoding_options
    from worker.pipeline.options import parse_options
    from worker.pipeline.settings import get_settings
    from worker.pipeline.transcription import transcribe_array

    model, settings = get_model(), get_settings()
    options = decoding_options(parse_options({"diarize": True, "language": "en"}))
    return [
        [
            dict(s)
            for s in transcribe_array(model, i.conversation.audio, options, **settings.decoding()).segments
        ]
        for i in items
    ]


def words(
    items: list[ev.Embedded], method: ev.Method, segments: list[list[dict[str, Any]]]
) -> dict[str, Any]:
    """Words given to the right speaker, per condition and all together."""
    counts: dict[str, list[int]] = {c: [0, 0] for c in built.CONDITIONS}
    for item, segs in zip(items, segments, strict=True):
        turns, _ = ev.turns_of(item, method)
        right, scored = ev.word_rate(item, turns, segs)
        counts[item.conversation.condition][0] += right
        counts[item.conversation.condition][1] += scored
    out = {c: round(100 * r / max(n, 1), 1) for c, (r, n) in counts.items()}
    out["all"] = round(
        100 * sum(r for r, _ in counts.values()) / max(1, sum(n for _, n in counts.values())), 1
    )
    out["words"] = sum(n for _, n in counts.values())
    return out


def references(side: str) -> dict[str, np.ndarray]:
    """The reference embeddings of one side's speakers that have a reference."""
    from worker.pipeline.known_speakers import reference_embedding

    chosen = {s.name for s in built.split(SEED)[side]}
    out = {}
    for speaker in speakers():
        if speaker.name in chosen and speaker.reference is not None:
            embedding = reference_embedding(speaker.reference)
            if embedding is not None:
                out[speaker.name] = embedding
    return out


def known_speakers(dev: list[ev.Embedded], test: list[ev.Embedded], method: ev.Method) -> dict[str, Any]:
    """The match threshold chosen on development (most named right, at most MAX_WRONG_NAMES wrong),
    its rates on test, overall and per version."""
    dev_names = ev.known_speaker_rates(dev, method, references("dev"), MATCH_THRESHOLDS)
    allowed = [t for t, r in dev_names.items() if r["named_wrongly"] <= MAX_WRONG_NAMES]
    # The most named right within the allowed wrong names; else the fewest wrong names.
    match = (
        max(allowed, key=lambda t: (dev_names[t]["named_right"], t))
        if allowed
        else min(dev_names, key=lambda t: (dev_names[t]["named_wrongly"], -dev_names[t]["named_right"]))
    )
    test_refs = references("test")
    test_names = ev.known_speaker_rates(test, method, test_refs, [match])[match]
    by_version = {}
    for condition in built.CONDITIONS:
        items = [i for i in test if i.conversation.condition == condition]
        by_version[condition] = ev.known_speaker_rates(items, method, test_refs, [match])[match]
    shown = {t: (r["named_right"], r["named_wrongly"]) for t, r in dev_names.items()}
    print(f"known speakers, development (threshold: % named right, % named wrongly): {shown}")
    print(
        f"known speakers, test at threshold {match}: {test_names['named_right']} % of "
        f"{test_names['known_turns']} phrases of known speakers named right; "
        f"{test_names['named_wrongly']} % of {test_names['turns']} named wrongly; by version "
        + str({c: (r["named_right"], r["named_wrongly"]) for c, r in by_version.items()})
    )
    return {
        "dev": {str(k): v for k, v in dev_names.items()},
        "threshold": match,
        "max_wrong_names_dev": MAX_WRONG_NAMES,
        "test": test_names,
        "test_by_version": by_version,
    }


def real_files(methods: dict[str, ev.Method]) -> dict[str, Any]:
    """DER of each method on the real AMI meeting and falcon recording (RTTM truth)."""
    out: dict[str, Any] = {}
    for name in ("falcon_3spk", "ami_meeting_4spk"):
        audio = _read(EVAL_DIR / f"{name}.wav")
        truth = rttm_turns(EVAL_DIR / f"{name}.rttm")
        conversation = built.Conversation(name, "real", audio, truth, (), ())
        item = ev.embed([conversation])[0]
        out[name] = {}
        for label, method in methods.items():
            turns, _ = ev.turns_of(item, method)
            s = der_parts(truth, [(t.start, t.end, t.speaker) for t in turns])
            out[name][label] = {
                "der": round(100 * s.der, 1),
                "missed": round(100 * s.missed / s.total, 1),
                "false_alarm": round(100 * s.false_alarm / s.total, 1),
                "confusion": round(100 * s.confusion / s.total, 1),
                "speakers_true": s.speakers_true,
                "speakers_found": s.speakers_found,
            }
    return out


#: Recordings of one speaker: how often is one voice split in two?
ONE_SPEAKER = ("librivox_0870.wav", "librivox_0890.wav", "mfa_acoustic_corpus.wav", "mfa_cold_corpus.wav")


def one_speaker_counts(method: ev.Method) -> dict[str, int]:
    conversations = [built.Conversation(n, "real", _read(EVAL_DIR / n), [], (), ()) for n in ONE_SPEAKER]
    return {
        item.conversation.name: len({t.speaker for t in ev.turns_of(item, method)[0]})
        for item in ev.embed(conversations)
    }


def job_times(path: Path, repeats: int = 3) -> dict[str, Any]:
    """The worker's transcribe path on ``path``: plain and with diarize=true, alternated, medians."""
    os.environ.setdefault("ASR_DEVICE", "cpu")
    from worker.asr import get_model
    from worker.pipeline.diarization import warm_encoder
    from worker.pipeline.diarize_job import decoding_options, label_transcript
    from worker.pipeline.options import parse_options
    from worker.pipeline.settings import get_settings
    from worker.pipeline.transcription import transcribe_array

    model, settings = get_model(), get_settings()
    warm_encoder()
    audio = _read(path)
    variants = {"plain": parse_options({}), "diarize": parse_options({"diarize": True})}
    times: dict[str, list[float]] = {name: [] for name in [*variants, "diarize_step"]}
    for _ in range(repeats):
        for name, options in variants.items():
            started = time.perf_counter()
            transcript = transcribe_array(model, audio, decoding_options(options), **settings.decoding())
            if options.diarize:
                _, extra = label_transcript(audio, transcript, options)
                times["diarize_step"].append(extra["diarize_seconds"])
            times[name].append(time.perf_counter() - started)
    median = {name: statistics.median(values) for name, values in times.items()}
    return {
        "file": path.name,
        "audio_seconds": round(len(audio) / 16000, 1),
        "model": settings.model_id,
        "repeats": repeats,
        "median_seconds": {name: round(value, 2) for name, value in median.items()},
        "added_percent": round(100 * (median["diarize"] - median["plain"]) / median["plain"], 1),
        "step_percent": round(100 * median["diarize_step"] / median["plain"], 1),
        "runs": {name: [round(t, 2) for t in values] for name, values in times.items()},
    }


def _line(label: str, s: dict[str, Any]) -> str:
    return (
        f"  {label:10} n={s['conversations']:3d}  DER {s['der']:5.1f} %  count exact: 2-3 spk "
        f"{s['count_exact_2_3']} %, 4-6 spk {s['count_exact_4_6']} %  found-true {s['found_minus_true']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one conversation per count, no job timing")
    args = parser.parse_args(argv)
    os.environ.setdefault("ASR_DEVICE", "cpu")
    from worker.pipeline.diarization import warm_encoder

    warm_encoder()
    per_count = dict.fromkeys(built.PER_COUNT, 1) if args.quick else None
    sides = built.split(SEED)
    results: dict[str, Any] = {
        "seed": SEED,
        "split": {side: [(s.name, s.gender) for s in group] for side, group in sides.items()},
    }
    started = time.perf_counter()
    dev = ev.embed(built.conversations("dev", seed=SEED, per_count=per_count))
    test = ev.embed(built.conversations("test", seed=SEED, per_count=per_count))
    seconds = time.perf_counter() - started
    print(f"embedded {len(dev)} development and {len(test)} test conversations in {seconds:.0f} s")

    chosen = choose(dev)
    results["development"] = chosen
    print("development (every setting):")
    for key, entry in chosen["grid"].items():
        print(_line(key[:10], entry["dev"]), key)
    fixed = "threshold {threshold} tie {tie} min {min_windows}".format(**FIXED)
    chosen["fixed"] = fixed
    methods = {
        "threshold": _method(chosen["grid"], chosen["threshold"]),
        "nme_sc": _method(chosen["grid"], chosen["nme_sc"]),
        "fixed": _method(chosen["grid"], fixed),
    }
    print(f"chosen on development: {chosen['threshold']}; {chosen['nme_sc']}; beside them: {fixed}")

    segments = _transcripts(test)
    results["test"] = {}
    for label, method in methods.items():
        rows = _rows(test, method)
        summary = _summaries(rows) | {"words_right": words(test, method, segments)}
        results["test"][label] = summary
        print(f"test, {label} ({chosen[label]}):")
        for condition in ("all", *built.CONDITIONS):
            print(_line(condition, summary[condition]))
        print(f"  words to the right speaker: {summary['words_right']}")

    # Kept: the better on development (the fixed constants are shown, not candidates).
    kept = max(("threshold", "nme_sc"), key=lambda k: _objective(chosen["grid"][chosen[k]]["dev"]))
    results["kept"] = kept
    results["known_speakers"] = known_speakers(dev, test, methods[kept])

    results["real"] = real_files(methods)
    for name, row in results["real"].items():
        print(
            f"{name}: "
            + "; ".join(
                f"{k} DER {v['der']} % ({v['speakers_found']}/{v['speakers_true']} speakers)"
                for k, v in row.items()
            )
        )
    results["one_speaker_counts"] = one_speaker_counts(methods[kept])
    print("speakers found in one-speaker recordings:", results["one_speaker_counts"])
    if not args.quick:
        job = results["job"] = job_times(EVAL_DIR / "ami_meeting_4spk.wav")
        seconds = job["median_seconds"]
        print(
            f"job on {job['file']} ({job['audio_seconds']} s, {job['model']}, CPU), median of "
            f"{job['repeats']}: {seconds['plain']} s plain, {seconds['diarize']} s with diarize=true "
            f"(+{job['added_percent']} %); the diarization step {seconds['diarize_step']} s = "
            f"{job['step_percent']} % of the plain job"
        )
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
