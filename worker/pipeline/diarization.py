"""Who spoke when: offline speaker diarization with resemblyzer's speaker encoder.

Pure code, no Celery. Steps usable on their own, so a fanned-out job can embed its
pieces in several children and cluster them all in one place (docs/diarization.md):
:func:`speech_regions` (Silero VAD), :func:`embed_windows` (resemblyzer, weights in its
wheel), :func:`cluster` (scipy, silhouette count), :func:`speaker_turns` (per frame).

torch and resemblyzer (``requirements-diarization.txt``) are imported only when an
embedding is computed: workers without ``ASR_DIARIZATION`` never load them.
"""

from __future__ import annotations

import functools
import itertools
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from worker.pipeline.audio import SAMPLE_RATE
from worker.pipeline.errors import ModelUnavailableError

if TYPE_CHECKING:
    from resemblyzer import VoiceEncoder

__all__ = [
    "Diarization",
    "Turn",
    "Windows",
    "centroids",
    "cluster",
    "diarize",
    "embed_windows",
    "get_encoder",
    "speaker_turns",
    "speech_regions",
    "warm_encoder",
]

log = logging.getLogger(__name__)

#: Seconds of audio behind one speaker embedding (resemblyzer's own partial is 1.6 s; 2.0 s
#: measured better on the AMI meeting, docs/diarization.md). Not speech.py's 30 s decoding window.
EMBEDDING_WINDOW_SECONDS = 2.0
#: Seconds between the starts of two windows: each frame is heard by two or three windows.
STEP_SECONDS = 0.75
#: Each window's audio is brought to this level (RMS, dBFS) before it is embedded: resemblyzer's
#: mel spectrogram is not logarithmic and its training audio was at -30 dBFS, so the same speech
#: 10 dB quieter embedded only 0.82-0.90 alike to itself (a reference and a conversation, or two
#: speakers' levels, differ so); levelled, a voice is matched by its timbre, not its loudness.
WINDOW_LEVEL_DBFS = -30.0
#: Stretches of speech shorter than this get no window of their own (their frames borrow one).
MIN_WINDOW_SECONDS = 0.4
#: Cosine distance between speakers: the cut here bounds the count (one cluster: one speaker),
#: under it the count with the best silhouette wins (chosen, with SILHOUETTE_TIE, on the
#: development conversations of ``python -m bench.diarization``; docs/diarization.md).
DISTANCE_THRESHOLD = 0.25
#: Silhouettes this close are a tie, won by the fewer speakers.
SILHOUETTE_TIE = 0.0
#: A found speaker with fewer windows than this is not kept when the count is found: its windows
#: join the nearest other speaker (a cluster of one window was mostly a voice split off).
#: Chosen on the development conversations with the two constants above.
MIN_SPEAKER_WINDOWS = 2
#: The most speakers a recording is split into when the job names no number.
MAX_SPEAKERS = 8
#: Resolution of the speaker turns, seconds.
FRAME_SECONDS = 0.1
#: A turn shorter than this between two turns of one other speaker is taken as that speaker's.
MIN_TURN_SECONDS = 0.5
#: VAD for diarization: tighter than the decoder's (a padded stretch counts as speech in the DER).
VAD_MIN_SILENCE_MS = 250
VAD_PAD_MS = 50

#: torch's threads for the encoder: an LSTM over a few hundred short windows gains little from
#: more, and more fight CTranslate2's threads for the cores (3x slower with 2 on a busy 2-core box).
ENCODER_THREADS = 1

#: ``(start, end)`` seconds.
Span = tuple[float, float]


@dataclass(frozen=True)
class Turn:
    """One speaker speaking from ``start`` to ``end`` (seconds); ``speaker`` counts from 0."""

    start: float
    end: float
    speaker: int


@dataclass(frozen=True)
class Windows:
    """Speaker embeddings of windows of speech, and the speech they were cut from."""

    speech: list[Span]
    times: np.ndarray  #: (n, 2) start and end seconds of each window
    embeddings: np.ndarray  #: (n, 256) L2-normalised

    @classmethod
    def join(cls, parts: Sequence[Windows]) -> Windows:
        """Several pieces' windows (times already in the whole file) as one set."""
        return cls(
            speech=[span for part in parts for span in part.speech],
            times=np.concatenate([p.times for p in parts]) if parts else np.zeros((0, 2)),
            embeddings=np.concatenate([p.embeddings for p in parts]) if parts else np.zeros((0, 256)),
        )


@dataclass(frozen=True)
class Diarization:
    """The turns of a recording and the windows they were found from."""

    turns: list[Turn]
    windows: Windows
    labels: np.ndarray  #: the speaker of each window
    seconds: float  #: time it took


@functools.lru_cache(maxsize=1)
def get_encoder() -> VoiceEncoder:
    """The process's speaker encoder, loaded on first use (like faster-whisper's ``get_vad_model``).

    Raises:
        ModelUnavailableError: torch or resemblyzer is not installed (requirements-diarization.txt).
    """
    try:
        with warnings.catch_warnings():  # its imports' deprecations (pkg_resources, scipy.ndimage)
            warnings.simplefilter("ignore")
            from resemblyzer import VoiceEncoder
    except ImportError as exc:
        raise ModelUnavailableError(
            f"speaker diarization needs requirements-diarization.txt installed ({exc})"
        ) from None
    started = time.perf_counter()
    encoder = VoiceEncoder(device="cpu", verbose=False)
    encoder.eval()
    log.info("speaker encoder loaded in %.2f s", time.perf_counter() - started)
    return encoder


def warm_encoder(threads: int = ENCODER_THREADS) -> float:
    """Load the encoder, embed one second of noise and cluster once; returns the seconds it took.

    Args:
        threads: torch's CPU threads in this process (:data:`ENCODER_THREADS` by default).
    """
    import torch

    started = time.perf_counter()
    torch.set_num_threads(threads)
    noise = np.random.default_rng(0).standard_normal(SAMPLE_RATE).astype(np.float32) * 0.01
    embedding = _embed_mels([_mel(noise)])
    cluster(np.concatenate([embedding, embedding[:, ::-1], embedding]))  # imports scipy and sklearn
    return time.perf_counter() - started


def speech_regions(audio: np.ndarray) -> list[Span]:
    """Where Silero VAD hears speech in 16 kHz mono ``audio``."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    stamps = get_speech_timestamps(
        audio,
        # Stretches of at most 30 s keep the frame-by-window matrices of speaker_turns small.
        VadOptions(
            min_silence_duration_ms=VAD_MIN_SILENCE_MS, speech_pad_ms=VAD_PAD_MS, max_speech_duration_s=30.0
        ),
    )
    return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]


def _mel(audio: np.ndarray) -> np.ndarray:
    from resemblyzer import wav_to_mel_spectrogram

    return wav_to_mel_spectrogram(audio)


def _embed_mels(mels: Sequence[np.ndarray]) -> np.ndarray:
    """Embed mel spectrograms, batching those of equal length."""
    import torch

    encoder = get_encoder()
    out = np.zeros((len(mels), 256), dtype=np.float32)
    by_length: dict[int, list[int]] = {}
    for i, mel in enumerate(mels):
        by_length.setdefault(len(mel), []).append(i)
    with torch.inference_mode():
        for indices in by_length.values():
            batch = torch.from_numpy(np.stack([mels[i] for i in indices]))
            out[indices] = encoder(batch).numpy()
    return out


def _window_starts(frames: int, size: int, step: int) -> list[int]:
    """Starts of windows of ``size`` frames every ``step`` frames, the last one ending at the end."""
    if frames <= size:
        return [0]
    starts = list(range(0, frames - size + 1, step))
    if starts[-1] + size < frames:
        starts.append(frames - size)
    return starts


def _levelled(mel: np.ndarray, audio: np.ndarray) -> np.ndarray:
    """``mel`` (a power spectrogram of ``audio``) as if ``audio`` were at :data:`WINDOW_LEVEL_DBFS`."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    if rms < 1e-6:  # digital silence: nothing to level
        return mel
    return (mel * (10 ** (WINDOW_LEVEL_DBFS / 20) / rms) ** 2).astype(np.float32)


def embed_windows(audio: np.ndarray, speech: Sequence[Span], *, offset: float = 0.0) -> Windows:
    """Embed overlapping windows of each stretch of ``speech`` in ``audio``.

    Args:
        offset: seconds ``audio`` starts at in the whole file (a fanned-out piece's start);
            ``speech`` is in ``audio``'s own seconds, the result in the whole file's.
    """
    size, step = round(EMBEDDING_WINDOW_SECONDS * 100), round(STEP_SECONDS * 100)
    hop = SAMPLE_RATE // 100  # samples per mel frame (resemblyzer's 10 ms step)
    mels, times = [], []
    for start, end in speech:
        if end - start < MIN_WINDOW_SECONDS:
            continue
        stretch = audio[round(start * SAMPLE_RATE) : round(end * SAMPLE_RATE)]
        mel = _mel(stretch)
        for first in _window_starts(len(mel), size, step):
            heard = stretch[first * hop : (first + size) * hop]
            mels.append(_levelled(mel[first : first + size], heard))
            lo = start + first / 100
            times.append((lo, min(end, lo + len(mels[-1]) / 100)))
    embeddings = _embed_mels(mels) if mels else np.zeros((0, 256), dtype=np.float32)
    return Windows(
        speech=[(s + offset, e + offset) for s, e in speech],
        times=np.asarray(times, dtype=np.float64).reshape(-1, 2) + offset,
        embeddings=embeddings,
    )


def centroids(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The L2-normalised mean embedding of each label 0..max."""
    sums = np.zeros((int(labels.max()) + 1, embeddings.shape[1]))
    np.add.at(sums, labels, embeddings)
    return sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-9)


def _compact(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0..k-1 without holes."""
    return np.unique(labels, return_inverse=True)[1].reshape(-1)


def _best_count(embeddings: np.ndarray, tree: np.ndarray, lowest: int, highest: int) -> int:
    """The fewest clusters whose cut of ``tree`` has (within a tie) the best silhouette (cosine)."""
    from scipy.cluster.hierarchy import fcluster
    from sklearn.metrics import silhouette_score

    scores: dict[int, float] = {}
    for count in range(max(lowest, 2), min(highest, len(embeddings) - 1) + 1):
        labels = fcluster(tree, count, "maxclust")
        if len(np.unique(labels)) >= 2:
            scores[count] = float(silhouette_score(embeddings, labels, metric="cosine"))
    if not scores:
        return lowest
    best = max(scores.values())
    return min(count for count, score in scores.items() if score >= best - SILHOUETTE_TIE)


def cluster(
    embeddings: np.ndarray,
    *,
    num_speakers: int | None = None,
    min_speakers: int | None = None,
    max_speakers: int | None = None,
    threshold: float | None = None,
    min_windows: int | None = None,
) -> np.ndarray:
    """The speaker (0..k-1) of each embedding.

    Average-linkage clustering on cosine distances (scipy). Without ``num_speakers``, the
    cut at ``threshold`` (default :data:`DISTANCE_THRESHOLD`) gives the most speakers there
    may be (one cluster: one speaker); the count from ``min_speakers`` up to that (and to
    ``max_speakers``, default :data:`MAX_SPEAKERS`) whose cut has the best silhouette wins.
    Then each window moves to its nearest centroid, and (the count not given) speakers of
    fewer than ``min_windows`` windows (default :data:`MIN_SPEAKER_WINDOWS`) join their nearest.
    """
    count = len(embeddings)
    if count < 2:
        return np.zeros(count, dtype=np.int64)
    from scipy.cluster.hierarchy import fcluster, linkage

    tree = linkage(embeddings, method="average", metric="cosine")
    lowest, highest = min_speakers or 1, max(max_speakers or MAX_SPEAKERS, min_speakers or 1)
    if num_speakers:
        wanted = num_speakers
    else:
        # The threshold's cut bounds the count: silhouettes also reward splitting one voice
        # into tight groups of near-repeats (a file of 4 copies of falcon_3spk: 6 "speakers").
        distinct = int(fcluster(tree, threshold or DISTANCE_THRESHOLD, "distance").max())
        wanted = _best_count(embeddings, tree, lowest, min(highest, max(distinct, lowest)))
    labels = _compact(fcluster(tree, min(wanted, count), "maxclust") - 1)
    # One nearest-centroid pass: average linkage leaves windows at a cluster's edge in the
    # wrong cluster more often than their centroid distance says.
    moved = np.argmax(embeddings @ centroids(embeddings, labels).T, axis=1)
    if len(np.unique(moved)) == len(np.unique(labels)):
        labels = moved
    if not num_speakers:
        smallest = MIN_SPEAKER_WINDOWS if min_windows is None else min_windows
        labels = _without_small(embeddings, _compact(labels), smallest, lowest)
    return _compact(labels)


def _without_small(embeddings: np.ndarray, labels: np.ndarray, smallest: int, lowest: int) -> np.ndarray:
    """Windows of clusters under ``smallest`` windows moved to the nearest kept one (``lowest`` kept)."""
    sizes = np.bincount(labels)
    kept = np.flatnonzero(sizes >= smallest)
    if len(kept) < max(lowest, 1):
        kept = np.sort(np.argsort(-sizes, kind="stable")[: max(lowest, 1)])
    if len(kept) == len(sizes):
        return labels
    nearest = kept[np.argmax(embeddings @ centroids(embeddings, labels)[kept].T, axis=1)]
    return np.where(np.isin(labels, kept), labels, nearest)


def _merged(spans: Sequence[Span]) -> list[Span]:
    out: list[list[float]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(a, b) for a, b in out]


def _frame_labels(centers: np.ndarray, times: np.ndarray, sims: np.ndarray) -> np.ndarray:
    """The speaker of each frame: best mean similarity over the windows that hear it."""
    covering = (centers[:, None] >= times[None, :, 0]) & (centers[:, None] < times[None, :, 1])
    nearest = np.argmin(np.abs(centers[:, None] - times.mean(axis=1)[None, :]), axis=1)
    covering[np.arange(len(centers)), nearest] |= ~covering.any(axis=1)
    scores = (covering.astype(np.float64) @ sims) / covering.sum(axis=1, keepdims=True)
    return np.argmax(scores, axis=1)


def _smoothed(labels: np.ndarray) -> np.ndarray:
    """Runs shorter than :data:`MIN_TURN_SECONDS` take their longer neighbour's speaker."""
    shortest = round(MIN_TURN_SECONDS / FRAME_SECONDS)
    labels = labels.copy()
    changed = True
    while changed:
        changed = False
        cuts = np.flatnonzero(np.diff(labels)) + 1
        bounds = [0, *cuts.tolist(), len(labels)]
        runs = list(itertools.pairwise(bounds))
        if len(runs) < 2:
            break
        for i, (lo, hi) in enumerate(runs):
            if hi - lo >= shortest:
                continue
            before = runs[i - 1] if i else None
            after = runs[i + 1] if i + 1 < len(runs) else None
            longer = max((r for r in (before, after) if r), key=lambda r: r[1] - r[0])
            labels[lo:hi] = labels[longer[0]]
            changed = True
            break
    return labels


def speaker_turns(windows: Windows, labels: np.ndarray) -> list[Turn]:
    """Turns at :data:`FRAME_SECONDS` resolution over ``windows.speech``."""
    if not len(labels):
        return []
    sims = windows.embeddings @ centroids(windows.embeddings, labels).T
    turns: list[Turn] = []
    for start, end in _merged(windows.speech):
        edges = np.append(np.arange(start, end, FRAME_SECONDS), end)
        if len(edges) > 2 and edges[-1] - edges[-2] < FRAME_SECONDS / 2:
            edges = np.delete(edges, -2)
        reach = EMBEDDING_WINDOW_SECONDS
        near = (windows.times[:, 1] > start - reach) & (windows.times[:, 0] < end + reach)
        if not near.any():
            near[:] = True
        frames = _smoothed(_frame_labels((edges[:-1] + edges[1:]) / 2, windows.times[near], sims[near]))
        for i, speaker in enumerate(frames.tolist()):
            lo, hi = float(edges[i]), float(edges[i + 1])
            if turns and turns[-1].speaker == speaker and abs(turns[-1].end - lo) < 1e-6:
                turns[-1] = Turn(turns[-1].start, hi, speaker)
            else:
                turns.append(Turn(lo, hi, speaker))
    return [Turn(round(t.start, 3), round(t.end, 3), t.speaker) for t in turns]


def _by_first_turn(turns: list[Turn], labels: np.ndarray) -> tuple[list[Turn], np.ndarray]:
    """Speakers renumbered in the order they first speak (SPEAKER_00 speaks first)."""
    order: dict[int, int] = {}
    for turn in turns:
        order.setdefault(turn.speaker, len(order))
    for label in labels.tolist():
        order.setdefault(label, len(order))
    mapping = np.array([order[i] for i in range(len(order))], dtype=np.int64)
    return [Turn(t.start, t.end, order[t.speaker]) for t in turns], mapping[labels] if len(labels) else labels


def label(
    windows: Windows,
    *,
    num_speakers: int | None = None,
    min_speakers: int | None = None,
    max_speakers: int | None = None,
) -> tuple[list[Turn], np.ndarray]:
    """Cluster ``windows`` (of one file, or of all its pieces) into speaker turns."""
    labels = cluster(
        windows.embeddings, num_speakers=num_speakers, min_speakers=min_speakers, max_speakers=max_speakers
    )
    return _by_first_turn(speaker_turns(windows, labels), labels)


def diarize(
    audio: np.ndarray,
    *,
    num_speakers: int | None = None,
    min_speakers: int | None = None,
    max_speakers: int | None = None,
    speech: Sequence[Span] | None = None,
) -> Diarization:
    """Who speaks when in 16 kHz mono ``audio``.

    Args:
        speech: where the speech is, if known; else Silero VAD finds it.
    """
    started = time.perf_counter()
    spans = list(speech) if speech is not None else speech_regions(audio)
    windows = embed_windows(audio, spans)
    turns, labels = label(
        windows, num_speakers=num_speakers, min_speakers=min_speakers, max_speakers=max_speakers
    )
    return Diarization(turns, windows, labels, time.perf_counter() - started)
