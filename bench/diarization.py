"""Speaker diarization on recordings the method never saw: count, DER, words, names, and time added.

Conversations of 2-6 speakers are built from the distinct real speakers of
``../shared/audio`` (``evaluation/speakers.py``, ``evaluation/conversations.py``): clean,
telephone (8 kHz, G.711 mu-law) and noisy (10-20 dB SNR) versions. Speakers are split
into development and test (seeded): every constant is chosen on development, figures
are reported on test. Three counts are compared: the worker's (an average-linkage cut at a
cosine distance bounds the count, the best silhouette picks it) with one rule per band
(wideband; narrowband, as a telephone), the same with one rule for all, and NME-SC (the
largest eigengap of a self-tuned binarised affinity, ``evaluation/nme_sc.py``).
``--windows`` compares window lengths on development only (each needs its own embedding).

DER: ``pyannote.metrics``, 0.25 s collar, pooled (total error over total speech). Test figures
are the whole job's: each version is decoded (tiny.en, the worker's transcribe path) and the
words the VAD missed become turns of the nearest speaker, as in the worker; the VAD's turns
alone are reported beside them. Words to the right speaker: each decoded word given the speaker
of the turn it overlaps most, against the truth speaker under DER's optimal mapping. The split
is also run the other way round (rules chosen on the test side, scored on development, the
VAD's turns) to show how much six speakers a side move the rates. Known speakers: every
conversation is given the references (speech kept out of every conversation) of all speakers
of its side that have one, present or not; the match and turn thresholds are chosen on the
job's turns of development. The real AMI meeting and falcon recording
are scored against their RTTM. The job's time: tiny.en on the CPU over the 60 s AMI
meeting, plain and with ``diarize=true``, alternated, median of 3.

    python -m bench.diarization            # prints figures, writes bench/results/diarization.json
    python -m bench.diarization --quick    # a few conversations: checks the bench runs
    python -m bench.diarization --windows  # window length and step, compared on development
    python -m bench.diarization --poor-mic # one speaker on a poor microphone: the worker's figures
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from evaluation import conversations as built
from evaluation import diarization_eval as ev
from evaluation.diarization_scores import der_parts
from evaluation.scoring import EVAL_DIR, ROOT
from evaluation.speakers import rttm_turns, speakers

RESULTS = ROOT / "bench" / "results" / "diarization.json"
WINDOWS_RESULTS = ROOT / "bench" / "results" / "diarization_windows.json"
POOR_MIC_RESULTS = ROOT / "bench" / "results" / "diarization_poor_mic.json"
#: The count's constants searched on development, for each band.
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
TIES = (0.0, 0.02)
#: Clusters of fewer windows join their nearest (1: none do).
MIN_WINDOWS = (1, 2, 3)
BANDS = ("wide", "narrow")
#: Window length and step (seconds) compared on development by --windows.
WINDOW_CHOICES = ((1.5, 0.5), (1.5, 0.75), (2.0, 0.75), (1.5, 1.0), (2.0, 1.0), (3.0, 1.0))
#: --windows keeps the cheapest setting (fewest frames embedded per second: length / step) whose
#: development count rates are each at most this many points under the best setting's (the best
#: mean of the two; one conversation is 1.9 / 2.6 points) and whose DER is at most
#: WINDOW_DER_SLACK points over it. Fixed before the settings after the first three were run.
WINDOW_RATE_SLACK = 3.0
WINDOW_DER_SLACK = 0.5
NEIGHBOUR_FRACTIONS = (0.25, 0.5)
MATCH_THRESHOLDS_SEARCHED = tuple(round(0.2 + 0.025 * i, 3) for i in range(25))
#: A named speaker's turn keeps the name from this similarity to the reference: -1.0 keeps it on every
#: turn with a window of its own.
TURN_THRESHOLDS_SEARCHED = (-1.0, 0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7)
#: The largest share of phrases named wrongly a match threshold may have on development (under
#: 2 %, the target); where none is under it, the threshold with the fewest wrong names is taken.
MAX_WRONG_NAMES = 1.99
SEED = 0


def _read(path: Path) -> np.ndarray:
    from worker.pipeline.audio import decode_tracks

    tracks, _ = decode_tracks(path, None)
    return tracks[0]


def objective(summary: dict[str, Any]) -> tuple[float, float]:
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


def _rule(key: str) -> Any:
    from worker.pipeline.diarization import CountRule

    threshold, tie, smallest = key.split("/")
    return CountRule(float(threshold), float(tie), int(smallest))


def _grid_keys() -> list[str]:
    return [f"{t}/{tie}/{m}" for t in THRESHOLDS for tie in TIES for m in MIN_WINDOWS]


def choose(dev: list[ev.Embedded], *, heard: bool = False) -> dict[str, Any]:
    """Each method's constants chosen on development, with every setting's development figures:
    a rule per band (each on the conversations of its band), one rule for all, NME-SC. ``heard``:
    the rules' count found from the windows that hold a decoded word (no NME-SC then)."""
    grid: dict[str, dict[str, Any]] = {}
    by_band = {band: [i for i in dev if i.windows.band == band] for band in BANDS}
    for key in _grid_keys():
        rule = _rule(key)
        grid[key] = {
            "all": _summaries(_rows(dev, ev.rule_method(dict.fromkeys(BANDS, rule), heard=heard)))["all"],
            **{
                band: _summaries(_rows(items, ev.rule_method({band: rule}, heard=heard)))["all"]
                for band, items in by_band.items()
                if items
            },
        }
    nme: dict[str, dict[str, Any]] = {}
    for fraction in () if heard else NEIGHBOUR_FRACTIONS:
        nme[str(fraction)] = _summaries(_rows(dev, ev.nme_sc_method(fraction)))["all"]
    rules = {
        band: max(_grid_keys(), key=lambda k, b=band: objective(grid[k][b])) if by_band[band] else None
        for band in BANDS
    }
    one = max(_grid_keys(), key=lambda k: objective(grid[k]["all"]))
    rules = {band: rules[band] or one for band in BANDS}
    per_band = _summaries(_rows(dev, _per_band(rules, heard=heard)))["all"]
    best_nme = max(nme, key=lambda k: objective(nme[k])) if nme else None
    return {
        "grid": grid,
        "nme_sc_grid": nme,
        "bands": {band: len(items) for band, items in by_band.items()},
        "rules": rules,
        "one_rule": one,
        "nme_sc": best_nme,
        "dev": {"per_band": per_band, "one_rule": grid[one]["all"]}
        | ({"nme_sc": nme[best_nme]} if best_nme else {}),
    }


def swapped(dev: list[ev.Embedded], test: list[ev.Embedded]) -> dict[str, Any]:
    """The split the other way round: a rule per band chosen on the test side's conversations by
    the same objective, scored on the development side (speakers those rules never saw). With six
    speakers a side, one unusual voice moves a side's rates: the two directions together say how
    much. The same rules on the test side itself are kept for scale only (tuned there: no result)."""
    rules = {}
    for band in BANDS:
        items = [i for i in test if i.windows.band == band]
        scored = {k: _summaries(_rows(items, ev.rule_method({band: _rule(k)})))["all"] for k in _grid_keys()}
        rules[band] = max(_grid_keys(), key=lambda k, s=scored: objective(s[k]))
    return {
        "rules": rules,
        "development": _summaries(_rows(dev, _per_band(rules))),
        "test_tuned_there": _summaries(_rows(test, _per_band(rules)))["all"],
    }


def _per_band(rules: dict[str, str], *, heard: bool = False) -> ev.Method:
    return ev.rule_method({band: _rule(key) for band, key in rules.items()}, heard=heard)


def _methods_of(rules: dict[str, str], one: str, fraction: str) -> dict[str, ev.Method]:
    return {
        "per_band": _per_band(rules),
        "one_rule": ev.rule_method(dict.fromkeys(BANDS, _rule(one))),
        "nme_sc": ev.nme_sc_method(float(fraction)),
    }


def compare_windows(per_count: dict[int, int] | None) -> dict[str, Any]:
    """Each window length and step of :data:`WINDOW_CHOICES` on development: its best rule per band."""
    from worker.pipeline import diarization

    saved = diarization.EMBEDDING_WINDOW_SECONDS, diarization.STEP_SECONDS
    out = {}
    try:
        for seconds, step in WINDOW_CHOICES:
            diarization.EMBEDDING_WINDOW_SECONDS, diarization.STEP_SECONDS = seconds, step
            dev = ev.embed(built.conversations("dev", seed=SEED, per_count=per_count))
            chosen = choose(dev)
            out[f"{seconds}/{step}"] = {"rules": chosen["rules"], "dev": chosen["dev"]["per_band"]}
            print(
                f"windows {seconds} s every {step} s:",
                line("dev", chosen["dev"]["per_band"]),
                chosen["rules"],
            )
    finally:
        diarization.EMBEDDING_WINDOW_SECONDS, diarization.STEP_SECONDS = saved
    kept = cheapest_window(out)
    print(
        f"kept: windows {kept} (the cheapest within {WINDOW_RATE_SLACK} points of the best count rates "
        f"and {WINDOW_DER_SLACK} of its DER)"
    )
    return out | {"kept": kept}


def cheapest_window(settings: dict[str, Any]) -> str:
    """The ``"length/step"`` that :data:`WINDOW_RATE_SLACK` and :data:`WINDOW_DER_SLACK` keep."""

    def rates(key: str) -> tuple[float, float]:
        dev = settings[key]["dev"]
        return dev["count_exact_2_3"], dev["count_exact_4_6"]

    def cost(key: str) -> float:
        length, step = (float(x) for x in key.split("/"))
        return length / step

    best = max(settings, key=lambda k: sum(rates(k)))
    near = [
        key
        for key in settings
        if all(r >= b - WINDOW_RATE_SLACK for r, b in zip(rates(key), rates(best), strict=True))
        and settings[key]["dev"]["der"] <= settings[best]["dev"]["der"] + WINDOW_DER_SLACK
    ]
    return min(near, key=lambda k: (cost(k), -sum(rates(k))))


def _check_worker_rules(heard: dict[str, str], every: dict[str, str]) -> None:
    """Say so when the worker's COUNT_RULES (the count from the windows that hold a word) or
    EVERY_WINDOW_RULES are not what development chose here."""
    from worker.pipeline.diarization import COUNT_RULES, EVERY_WINDOW_RULES

    for name, worker, chosen in (
        ("COUNT_RULES", COUNT_RULES, heard),
        ("EVERY_WINDOW_RULES", EVERY_WINDOW_RULES, every),
    ):
        for band, key in chosen.items():
            if worker[band] != _rule(key):
                print(f"NOTE: the worker's {name}[{band!r}] is {worker[band]}, development chose {key}")


def _transcripts(items: list[ev.Embedded]) -> list[list[dict[str, Any]]]:
    """tiny.en's segments (with word timings) of each item's own audio, by the worker's transcribe path."""
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


def references(side: str) -> dict[str, Any]:
    """The references (``known_speakers.Reference``) of one side's speakers that have one."""
    from worker.pipeline.known_speakers import reference_of

    chosen = {s.name for s in built.split(SEED)[side]}
    out = {}
    for speaker in speakers():
        if speaker.name in chosen and speaker.reference is not None:
            reference = reference_of(speaker.reference)
            if reference is not None:
                out[speaker.name] = reference
    return out


def _pooled_names(parts: list[dict[str, Any]]) -> dict[str, Any]:
    return ev.name_rates(*(sum(p[k] for p in parts) for k in ("right", "wrong", "known_turns", "turns")))


def _pair(key: tuple[float, float]) -> str:
    return f"{key[0]}/{key[1]}"


def known_speakers(dev: list[ev.Embedded], test: list[ev.Embedded], method: ev.Method) -> dict[str, Any]:
    """The match and turn thresholds of each band chosen on that band's development conversations
    (most named right, at most MAX_WRONG_NAMES wrong), their rates on test, overall and per version."""
    from worker.pipeline.known_speakers import MATCH_THRESHOLDS, TURN_THRESHOLDS

    dev_refs, test_refs = references("dev"), references("test")
    grid = [(m, t) for m in MATCH_THRESHOLDS_SEARCHED for t in TURN_THRESHOLDS_SEARCHED]
    chosen: dict[str, tuple[float, float]] = {}
    dev_rates: dict[str, Any] = {}
    for band in BANDS:
        items = [i for i in dev if i.windows.band == band]
        rates = ev.known_speaker_rates(items, method, dev_refs, grid)
        allowed = [k for k, r in rates.items() if r["named_wrongly"] <= MAX_WRONG_NAMES]
        # The most named right within the allowed wrong names (ties: the higher match threshold,
        # then the higher turn threshold); else the fewest wrong names.
        chosen[band] = (
            max(allowed, key=lambda k, r=rates: (r[k]["named_right"], k))
            if allowed
            else min(rates, key=lambda k, r=rates: (r[k]["named_wrongly"], -r[k]["named_right"]))
        )
        dev_rates[band] = {_pair(k): r for k, r in rates.items()}
        shown = {
            _pair(k): (r["named_right"], r["named_wrongly"])
            for k, r in rates.items()
            if k[1] in (-1.0, 0.2, 0.4)
        }
        print(f"known speakers, development, {band} (match/turn: % named right, % named wrongly): {shown}")
        print(f"known speakers, development, {band}: chose {_pair(chosen[band])}: {rates[chosen[band]]}")
        worker = (MATCH_THRESHOLDS[band], TURN_THRESHOLDS[band])
        if worker != chosen[band]:
            print(
                f"NOTE: the worker's MATCH_THRESHOLDS/TURN_THRESHOLDS[{band!r}] are {_pair(worker)}, "
                f"development chose {_pair(chosen[band])}"
            )

    def on_test(items: list[ev.Embedded]) -> dict[str, Any]:
        parts = []
        for band in BANDS:
            mine = [i for i in items if i.windows.band == band]
            if mine:
                parts.append(ev.known_speaker_rates(mine, method, test_refs, [chosen[band]])[chosen[band]])
        return _pooled_names(parts)

    test_names = on_test(test)
    by_version = {c: on_test([i for i in test if i.conversation.condition == c]) for c in built.CONDITIONS}
    # For information only (no constant is chosen from it): how naming trades on test, the match
    # threshold swept at the chosen turn threshold and with no turn check.
    curve = {}
    for band in BANDS:
        mine = [i for i in test if i.windows.band == band]
        pairs = [(m, t) for m in MATCH_THRESHOLDS_SEARCHED for t in sorted({chosen[band][1], -1.0})]
        rates = ev.known_speaker_rates(mine, method, test_refs, pairs)
        curve[band] = {_pair(k): (r["named_right"], r["named_wrongly"]) for k, r in rates.items()}
        print(
            f"known speakers, test, {band}, every match threshold (information, not a choice): {curve[band]}"
        )
    print(
        f"known speakers, test at thresholds { {b: _pair(k) for b, k in chosen.items()} }: "
        f"{test_names['named_right']} % of {test_names['known_turns']} phrases of known speakers named "
        f"right; {test_names['named_wrongly']} % of {test_names['turns']} named wrongly; by version "
        + str({c: (r["named_right"], r["named_wrongly"]) for c, r in by_version.items()})
    )
    return {
        "dev": dev_rates,
        "thresholds": {b: _pair(k) for b, k in chosen.items()},
        "max_wrong_names_dev": MAX_WRONG_NAMES,
        "test": test_names,
        "test_by_version": by_version,
        "test_curve": curve,
    }


def real_files(methods: dict[str, ev.Method], before: ev.Method) -> dict[str, Any]:
    """DER of each method's job on the real AMI meeting and falcon recording (RTTM truth), and of
    the VAD's turns alone (``before``: the count from every window)."""
    out: dict[str, Any] = {}
    for name in ("falcon_3spk", "ami_meeting_4spk"):
        audio = _read(EVAL_DIR / f"{name}.wav")
        truth = rttm_turns(EVAL_DIR / f"{name}.rttm")
        conversation = built.Conversation(name, "real", audio, truth, (), ())
        plain = ev.embed([conversation])[0]
        job = ev.with_words([plain], _transcripts([plain]), job=True)[0]
        out[name] = {}
        runs = [(label, method, job) for label, method in methods.items()]
        for label, method, item in [*runs, ("per_band, the VAD's turns alone", before, plain)]:
            turns, _ = ev.turns_of(item, method)
            out[name][label] = der_figures(truth, turns)
    return out


def der_figures(truth: Any, turns: Any) -> dict[str, Any]:
    """DER (%) of ``turns`` against ``truth`` (``(start, end, speaker)``), its parts and the counts."""
    s = der_parts(truth, [(t.start, t.end, t.speaker) for t in turns])
    return {
        "der": round(100 * s.der, 1),
        "missed": round(100 * s.missed / s.total, 1),
        "false_alarm": round(100 * s.false_alarm / s.total, 1),
        "confusion": round(100 * s.confusion / s.total, 1),
        "speakers_true": s.speakers_true,
        "speakers_found": s.speakers_found,
    }


#: Recordings of one speaker: how often is one voice split in two?
ONE_SPEAKER = ("librivox_0870.wav", "librivox_0890.wav", "mfa_acoustic_corpus.wav", "mfa_cold_corpus.wav")


def poor_mic(per_count: dict[int, int] | None) -> dict[str, Any]:
    """The worker's diarization on each side's clean conversations and on the same with one
    speaker on a poor microphone (``evaluation.conversations.poor_microphone``): count, DER,
    and how much of the weak speaker's speech the VAD heard. No constant is chosen from it."""
    from worker.pipeline.diarization import EVERY_WINDOW_RULES

    method = ev.rule_method(EVERY_WINDOW_RULES)  # nothing decoded here: the count from every window
    out: dict[str, Any] = {}
    for side in ("dev", "test"):
        clean = [
            c for c in built.conversations(side, seed=SEED, per_count=per_count) if c.condition == "clean"
        ]
        poor = built.poor_microphones(clean)
        items = ev.embed(clean + [c for c, _ in poor])
        rows = {
            condition: [
                (i.conversation, ev.score(i, ev.turns_of(i, method)[0]))
                for i in items
                if i.conversation.condition == condition
            ]
            for condition in ("clean", "poor_mic")
        }
        weak = [who for _, who in poor]
        out[side] = {
            **{condition: ev.count_rates(r) for condition, r in rows.items()},
            "weak_speaker_missed_by_vad": {
                "clean": ev.missed_by_vad(list(zip(items[: len(clean)], weak, strict=True))),
                "poor_mic": ev.missed_by_vad(list(zip(items[len(clean) :], weak, strict=True))),
            },
        }
        print(f"{side}: the weak speaker's speech the VAD missed {out[side]['weak_speaker_missed_by_vad']} %")
        for condition in ("clean", "poor_mic"):
            print(line(condition, out[side][condition]))
    return out


@functools.cache
def _one_speaker_items() -> list[ev.Embedded]:
    conversations = [built.Conversation(n, "real", _read(EVAL_DIR / n), [], (), ()) for n in ONE_SPEAKER]
    items = ev.embed(conversations)
    return ev.with_words(items, _transcripts(items), job=True)


def one_speaker_counts(method: ev.Method) -> dict[str, int]:
    return {
        item.conversation.name: len({t.speaker for t in ev.turns_of(item, method)[0]})
        for item in _one_speaker_items()
    }


def _share_holding_words(items: list[ev.Embedded]) -> dict[str, float]:
    """The least and the median share (%) of a conversation's windows that hold a decoded word."""
    from worker.pipeline.diarization import holding_words

    shares = [
        100 * float(holding_words(i.windows, i.words or ()).mean()) for i in items if len(i.windows.times)
    ]
    return {"min": round(min(shares), 1), "median": round(statistics.median(shares), 1)}


@contextlib.contextmanager
def _load_beside() -> Iterator[None]:
    """A thread multiplying matrices in torch while the body runs: the plain job with the cores
    kept busy beside it, a control for the job with its speakers found beside the decoder (on this
    machine's virtual CPUs, the decoder alone was slower than with a load beside it)."""
    import torch

    stop = threading.Event()

    def spin() -> None:
        matrix = torch.rand(200, 200)
        while not stop.is_set():
            matrix @ matrix

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def job_times(path: Path, repeats: int = 3) -> dict[str, Any]:
    """The worker's transcribe path on ``path``: plain, with diarize=true as the worker runs it (the
    speakers found while the decoder reads; the worker's encoder, on onnxruntime), the same with the
    step after decoding (``serial``: no room left beside the decoder), and with torch's encoder;
    alternated, medians. Run last: it sets torch's threads for the rest of the process."""
    os.environ.setdefault("ASR_DEVICE", "cpu")
    from worker.asr import get_model
    from worker.pipeline import diarization
    from worker.pipeline.diarize_job import decoding_options, label_transcript, start_diarization, warm
    from worker.pipeline.options import parse_options
    from worker.pipeline.settings import get_settings
    from worker.pipeline.speaker_encoder import TORCH, get_encoder, load_encoder
    from worker.pipeline.transcription import transcribe_array

    model, settings = get_model(), get_settings()
    # As a worker child loads it: on the Whisper model's CPU threads (onnxruntime fixes its
    # threads when its session is made, so the encoder the evaluation used is not reused).
    get_encoder.cache_clear()
    warm()
    encoders = {"diarize": get_encoder(), "diarize_torch": load_encoder(TORCH)}
    audio = _read(path)
    plain, diarize = parse_options({}), parse_options({"diarize": True})
    ways = {
        "diarize": ("diarize", True),
        "diarize_serial": ("diarize", False),
        "diarize_torch": ("diarize_torch", True),
    }
    names = ["plain", "plain_beside_load", *ways, *(f"{n}_step" for n in ways)]
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(repeats):
        started = time.perf_counter()
        transcribe_array(model, audio, decoding_options(plain), **settings.decoding())
        times["plain"].append(time.perf_counter() - started)
        with _load_beside():
            started = time.perf_counter()
            transcribe_array(model, audio, decoding_options(plain), **settings.decoding())
            times["plain_beside_load"].append(time.perf_counter() - started)
        for name, (encoder_name, beside) in ways.items():
            encoder = encoders[encoder_name]
            with mock.patch.object(diarization, "get_encoder", lambda encoder=encoder: encoder):
                started = time.perf_counter()
                found = start_diarization(audio) if beside else None
                transcript = transcribe_array(model, audio, decoding_options(diarize), **settings.decoding())
                _, extra = label_transcript(audio, transcript, diarize, found=found)
                times[name].append(time.perf_counter() - started)
            times[f"{name}_step"].append(extra["diarize_seconds"])
    speech = diarization.speech_regions(audio)
    runs = {}
    for name, encoder in encoders.items():
        with mock.patch.object(diarization, "get_encoder", lambda encoder=encoder: encoder):
            runs[name] = diarization.embed_windows(audio, speech).embeddings
    median = {name: statistics.median(values) for name, values in times.items()}

    def added(name: str) -> float:
        return round(100 * (median[name] - median["plain"]) / median["plain"], 1)

    return {
        "file": path.name,
        "audio_seconds": round(len(audio) / 16000, 1),
        "model": settings.model_id,
        "repeats": repeats,
        "encoder": {name: encoder.runtime for name, encoder in encoders.items()},
        "median_seconds": {name: round(value, 2) for name, value in median.items()},
        "added_percent": added("diarize"),
        "plain_beside_load_percent": added("plain_beside_load"),
        "serial_added_percent": added("diarize_serial"),
        # The step alone, after decoding: its own cost (beside the decoder it is stretched by sharing).
        "step_percent": round(100 * median["diarize_serial_step"] / median["plain"], 1),
        "torch_added_percent": added("diarize_torch"),
        "torch_step_percent": round(100 * median["diarize_torch_step"] / median["plain"], 1),
        "runtimes_min_cosine": round(float((runs["diarize"] * runs["diarize_torch"]).sum(axis=1).min()), 6),
        "runs": {name: [round(t, 2) for t in values] for name, values in times.items()},
    }


def line(label: str, s: dict[str, Any]) -> str:
    return (
        f"  {label:10} n={s['conversations']:3d}  DER {s['der']:5.1f} % (missed {s['missed']}, false alarm "
        f"{s['false_alarm']}, confusion {s['confusion']})  count exact: 2-3 spk "
        f"{s['count_exact_2_3']} %, 4-6 spk {s['count_exact_4_6']} %  found-true {s['found_minus_true']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one conversation per count, no job timing")
    parser.add_argument("--windows", action="store_true", help="compare window lengths on development")
    parser.add_argument(
        "--poor-mic",
        action="store_true",
        help="one speaker on a poor microphone, both sides (no choice made)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("ASR_DEVICE", "cpu")
    from worker.pipeline.diarization import warm_encoder

    warm_encoder()
    per_count = dict.fromkeys(built.PER_COUNT, 1) if args.quick else None
    # The runs of their own: each measures, writes its file (not in --quick) and ends.
    for asked, measure, path in (
        (args.windows, compare_windows, WINDOWS_RESULTS),
        (args.poor_mic, poor_mic, POOR_MIC_RESULTS),
    ):
        if asked:
            measured = measure(per_count)
            if not args.quick:
                path.write_text(json.dumps(measured, indent=2) + "\n")
                print(f"wrote {path}")
            return 0
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

    # Each version decoded (tiny.en, the worker's transcribe path): the count of the "heard"
    # method is found from the windows that hold a word, and the test figures are the job's.
    started = time.perf_counter()
    dev_segments, segments = _transcripts(dev), _transcripts(test)
    dev, test = ev.with_words(dev, dev_segments, job=False), ev.with_words(test, segments, job=False)
    print(f"decoded {len(dev) + len(test)} conversations in {time.perf_counter() - started:.0f} s")
    results["windows_holding_a_word"] = {
        side: _share_holding_words(items) for side, items in (("dev", dev), ("test", test))
    }
    print(f"share of windows holding a word (min, median): {results['windows_holding_a_word']}")

    chosen = choose(dev)
    chosen_heard = choose(dev, heard=True)
    results["development"] = chosen
    results["development_heard"] = chosen_heard
    for title, entry_of in (("every window", chosen), ("the windows that hold a word", chosen_heard)):
        print(f"development, the count from {title} (every setting: all, then each band):")
        for key, entry in entry_of["grid"].items():
            print(line(key, entry["all"]), {band: line(band, entry[band]) for band in BANDS if band in entry})
    print("development, NME-SC:", chosen["nme_sc_grid"])
    print(
        f"chosen on development: per band {chosen['rules']}; one rule {chosen['one_rule']}; "
        f"NME-SC p <= {chosen['nme_sc']} n; from the windows holding a word, per band "
        f"{chosen_heard['rules']}; conversations per band {chosen['bands']}"
    )
    dev_rates = {**chosen["dev"], "per_band_heard": chosen_heard["dev"]["per_band"]}
    for label, summary in dev_rates.items():
        print(line(label, summary))
    methods = _methods_of(chosen["rules"], chosen["one_rule"], chosen["nme_sc"])
    methods = {"per_band_heard": _per_band(chosen_heard["rules"], heard=True), **methods}

    dev_job, test_job = ev.with_words(dev, dev_segments, job=True), ev.with_words(test, segments, job=True)
    results["test"] = {}
    for label, method in methods.items():
        rows = _rows(test_job, method)
        summary = _summaries(rows) | {"words_right": words(test_job, method, segments)}
        results["test"][label] = summary
        print(f"test, {label}:")
        for condition in ("all", *built.CONDITIONS):
            print(line(condition, summary[condition]))
        print(f"  words to the right speaker: {summary['words_right']}")
    # Kept: the best on development; where development cannot tell them apart, the best on test
    # (the method may be kept on test; every constant in it was chosen on development).
    kept = max(methods, key=lambda k: (objective(dev_rates[k]), objective(results["test"][k]["all"])))
    _check_worker_rules(chosen_heard["rules"], chosen["rules"])
    if kept != "per_band_heard":
        print(f"NOTE: kept {kept}; the worker counts from the windows that hold a word")
    results["development_job"] = _summaries(_rows(dev_job, methods[kept]))
    print(line("development, the job's turns", results["development_job"]["all"]))
    before = _per_band(chosen["rules"])
    vad_only = _summaries(_rows(test, before)) | {"words_right": words(test, before, segments)}
    results["test_vad_turns_only"] = vad_only
    print("test, per_band, the VAD's turns alone (the count from every window, no turns from words):")
    for condition in ("all", *built.CONDITIONS):
        print(line(condition, vad_only[condition]))
    print(f"  words to the right speaker: {vad_only['words_right']}")

    flipped = results["swapped"] = swapped(dev, test)
    print(f"swapped: rules chosen on the test side {flipped['rules']}, on the development side:")
    for condition in ("all", *built.CONDITIONS):
        print(line(condition, flipped["development"][condition]))
    print(line("(tuned)", flipped["test_tuned_there"]), "<- where they were chosen: scale only")

    print(f"kept (best on development, then on test): {kept}")
    results["kept"] = kept
    results["known_speakers"] = known_speakers(dev_job, test_job, methods[kept])

    results["real"] = real_files(methods, before)
    for name, row in results["real"].items():
        print(
            f"{name}: "
            + "; ".join(
                f"{k} DER {v['der']} % ({v['speakers_found']}/{v['speakers_true']} speakers)"
                for k, v in row.items()
            )
        )
    results["one_speaker_counts"] = {label: one_speaker_counts(m) for label, m in methods.items()}
    print("speakers found in one-speaker recordings:", results["one_speaker_counts"])
    if not args.quick:
        job = results["job"] = job_times(EVAL_DIR / "ami_meeting_4spk.wav")
        seconds = job["median_seconds"]
        print(
            f"job on {job['file']} ({job['audio_seconds']} s, {job['model']}, CPU), median of "
            f"{job['repeats']}: {seconds['plain']} s plain, {seconds['diarize']} s with diarize=true "
            f"(+{job['added_percent']} %, the speakers found while the decoder reads; the plain job "
            f"with a torch load beside it {seconds['plain_beside_load']} s, "
            f"{job['plain_beside_load_percent']:+} %); the step after "
            f"decoding {seconds['diarize_serial']} s (+{job['serial_added_percent']} %), the step alone "
            f"{seconds['diarize_serial_step']} s = {job['step_percent']} % of the plain job "
            f"({job['encoder']['diarize']}); with torch's "
            f"encoder {seconds['diarize_torch']} s (+{job['torch_added_percent']} %), step "
            f"{seconds['diarize_torch_step']} s = {job['torch_step_percent']} %; the two embed alike "
            f"(lowest cosine {job['runtimes_min_cosine']})"
        )
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
