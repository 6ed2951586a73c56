"""Speaker diarization: DER per file (ours vs the prototype), speaker counts, and the time it adds to a job.

DER is ``pyannote.metrics``' DiarizationErrorRate with a 0.25 s collar (forgiveness
around each reference boundary, as usual), overlapping speech scored. Files: the
two eval recordings with RTTM truth (``../shared/audio/eval/README.md``) and
``tests/data/stereo_diarization.wav`` mixed to mono, whose truth is each channel's
speech (Silero VAD on that channel alone). The speaker count is never given.

The prototype baseline: Silero VAD stretches cut into 1.5 s windows, one
resemblyzer embedding each, agglomerative cosine clustering at our distance threshold.

The job's time: tiny.en on the CPU (the worker's own loader and transcribe path) over the
60 s AMI meeting: plain, with word timings, with ``diarize=true``; alternated, median of 5.

    python -m bench.diarization      # prints figures, writes bench/results/diarization.json
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.scoring import EVAL_DIR, ROOT

RESULTS = ROOT / "bench" / "results" / "diarization.json"
STEREO = ROOT / "tests" / "data" / "stereo_diarization.wav"
COLLAR = 0.25


def _read(path: Path) -> np.ndarray:
    from worker.pipeline.audio import decode_tracks

    tracks, _ = decode_tracks(path, None)
    return tracks[0]


def _rttm(path: Path) -> Any:
    from pyannote.core import Annotation, Segment

    truth = Annotation()
    for line in path.read_text().splitlines():
        parts = line.split()
        start, length = float(parts[3]), float(parts[4])
        truth[Segment(start, start + length)] = parts[7]
    return truth


def _stereo() -> tuple[np.ndarray, Any]:
    from pyannote.core import Annotation, Segment

    from worker.pipeline.audio import decode_tracks
    from worker.pipeline.diarization import speech_regions

    tracks, _ = decode_tracks(STEREO, "split")
    truth = Annotation()
    for channel, track in enumerate(tracks):
        for start, end in speech_regions(track):
            truth[Segment(start, end)] = f"channel{channel}"
    return (tracks[0] + tracks[1]) / 2, truth


def _annotation(turns: list[tuple[float, float, int]]) -> Any:
    from pyannote.core import Annotation, Segment

    found = Annotation()
    for start, end, speaker in turns:
        found[Segment(start, end)] = speaker
    return found


def prototype(audio: np.ndarray) -> list[tuple[float, float, int]]:
    """The 30-line prototype: 1.5 s windows of VAD speech, agglomerative cosine clustering."""
    from sklearn.cluster import AgglomerativeClustering

    from worker.pipeline import diarization

    windows = []
    for start, end in diarization.speech_regions(audio):
        edges = [*np.arange(start, end, 1.5).tolist(), end]
        windows += [(a, b) for a, b in itertools.pairwise(edges) if b - a >= 0.4]
    if len(windows) < 2:
        return [(a, b, 0) for a, b in windows]
    mels = [diarization._mel(audio[round(a * 16000) : round(b * 16000)]) for a, b in windows]
    embeddings = diarization._embed_mels(mels)
    labels = AgglomerativeClustering(
        n_clusters=None, metric="cosine", linkage="average", distance_threshold=diarization.DISTANCE_THRESHOLD
    ).fit_predict(embeddings)
    return [(a, b, int(label)) for (a, b), label in zip(windows, labels, strict=True)]


def ours(audio: np.ndarray) -> list[tuple[float, float, int]]:
    from worker.pipeline.diarization import diarize

    return [(t.start, t.end, t.speaker) for t in diarize(audio).turns]


def score(audio: np.ndarray, truth: Any) -> dict[str, Any]:
    from pyannote.metrics.diarization import DiarizationErrorRate

    out: dict[str, Any] = {"speakers_true": len(truth.labels())}
    for name, method in (("ours", ours), ("prototype", prototype)):
        started = time.perf_counter()
        turns = method(audio)
        seconds = time.perf_counter() - started
        found = _annotation(turns)
        parts = DiarizationErrorRate(collar=COLLAR)(truth, found, detailed=True)
        total = parts["total"] or 1.0
        out[name] = {
            "der": round(100 * parts["diarization error rate"], 1),
            "missed": round(100 * parts["missed detection"] / total, 1),
            "false_alarm": round(100 * parts["false alarm"] / total, 1),
            "confusion": round(100 * parts["confusion"] / total, 1),
            "speakers_found": len(found.labels()),
            "seconds": round(seconds, 2),
        }
    return out


#: Recordings of one speaker (eval README): how often is one voice split in two?
ONE_SPEAKER = ("librivox_0870.wav", "librivox_0890.wav", "mfa_acoustic_corpus.wav", "mfa_cold_corpus.wav")


def one_speaker_counts() -> dict[str, int]:
    """Speakers found (not given) in recordings of one speaker."""
    return {name: len({t[2] for t in ours(_read(EVAL_DIR / name))}) for name in ONE_SPEAKER}


def job_times(path: Path, repeats: int = 5) -> dict[str, Any]:
    """The worker's transcribe path on ``path``: plain, with word timings, with diarize=true.

    The three are alternated and each one's median taken: on a shared CPU single runs move
    by a few seconds. Diarized jobs decode with word timings (to cut at speaker changes), so
    the middle one tells the decoding's share of the difference from the diarization step's.
    """
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
    variants = {
        "plain": parse_options({}),
        "words": parse_options({"word_timestamps": True}),
        "diarize": parse_options({"diarize": True}),
    }
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
        # The step's own time against the plain job: steadier than the difference of two noisy jobs.
        "step_percent": round(100 * median["diarize_step"] / median["plain"], 1),
        "runs": {name: [round(t, 2) for t in values] for name, values in times.items()},
    }


def main() -> int:
    files = {
        name: (_read(EVAL_DIR / f"{name}.wav"), _rttm(EVAL_DIR / f"{name}.rttm"))
        for name in ("falcon_3spk", "ami_meeting_4spk")
    }
    files["stereo_diarization_mono_mix"] = _stereo()
    results: dict[str, Any] = {"collar_seconds": COLLAR, "der": {}}
    print(f"DER (pyannote.metrics, collar {COLLAR} s, overlap scored), speaker count not given")
    print(f"{'file':30} {'ours':>7} {'proto':>7}  missed/false/confusion (ours)  speakers true/ours/proto")
    for name, (audio, truth) in files.items():
        row = results["der"][name] = score(audio, truth)
        o, p = row["ours"], row["prototype"]
        print(
            f"{name:30} {o['der']:6.1f}% {p['der']:6.1f}%  {o['missed']:5.1f} / {o['false_alarm']:4.1f} / "
            f"{o['confusion']:4.1f}            {row['speakers_true']} / {o['speakers_found']} / "
            f"{p['speakers_found']}"
        )
    counts = results["one_speaker_counts"] = one_speaker_counts()
    print("speakers found in one-speaker recordings:", ", ".join(f"{k} {v}" for k, v in counts.items()))
    job = results["job"] = job_times(EVAL_DIR / "ami_meeting_4spk.wav")
    seconds = job["median_seconds"]
    print(
        f"job on {job['file']} ({job['audio_seconds']} s, {job['model']}, CPU), median of {job['repeats']}: "
        f"{seconds['plain']} s plain, {seconds['words']} s with word timings, {seconds['diarize']} s with "
        f"diarize=true (+{job['added_percent']}%); the diarization step itself {seconds['diarize_step']} s "
        f"= {job['step_percent']}% of the plain job"
    )
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
