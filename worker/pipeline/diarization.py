"""Who spoke when: offline speaker diarization with the CAM++ speaker encoder.

Pure code, no Celery. Steps usable on their own, so a fanned-out job can embed its
pieces in several children and cluster them all in one place (docs/diarization.md):
:func:`speech_regions` (Silero VAD), :func:`embed_windows` (CAM++,
:mod:`worker.pipeline.speaker_encoder`), :func:`cluster` (scipy, silhouette count),
:func:`speaker_turns` (per frame), :func:`with_decoded_speech` (the words the VAD missed).

torch and the encoder (``requirements-diarization.txt``) are imported only when an
embedding is computed: workers without ``ASR_DIARIZATION`` never load them.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from worker.pipeline.audio import SAMPLE_RATE
from worker.pipeline.speaker_encoder import EMBEDDING_DIM, FRAMES_PER_SECOND, get_encoder

__all__ = [
    "COUNT_RULES",
    "EVERY_WINDOW_RULES",
    "CountRule",
    "Diarization",
    "Turn",
    "Windows",
    "centroids",
    "cluster",
    "cluster_heard",
    "diarize",
    "embed_stretches",
    "embed_windows",
    "get_encoder",
    "holding_words",
    "is_narrowband",
    "speaker_turns",
    "speech_regions",
    "speech_windows",
    "stretches_outside",
    "warm_encoder",
    "with_decoded_speech",
    "with_stretches",
]

log = logging.getLogger(__name__)

#: Seconds of audio behind one speaker embedding, and between the starts of two windows (each
#: frame is heard by two): chosen on the development conversations among six settings, the
#: cheapest near the best (``python -m bench.diarization --windows``, docs/diarization.md).
#: Not speech.py's 30 s decoding window.
EMBEDDING_WINDOW_SECONDS = 1.5
STEP_SECONDS = 0.75
#: Stretches of speech shorter than this get no window of their own (their frames borrow one).
MIN_WINDOW_SECONDS = 0.4
#: Speech whose power above 4.3 kHz is this far (dB) under its power in 0.3-3.4 kHz is narrowband:
#: a telephone channel (8 kHz sampling keeps nothing above 4 kHz). On the development conversations
#: wideband speech measured -24 to -13 dB, its telephone versions -53 to -37 dB.
NARROWBAND_DB = -30.0


@dataclass(frozen=True)
class CountRule:
    """How the number of speakers is found when a job does not give it.

    The average-linkage cut at cosine distance ``threshold`` bounds the count (one cluster:
    one speaker); under it the count with the best silhouette wins, silhouettes within
    ``tie`` going to the fewer speakers; then a found speaker of fewer than ``min_windows``
    windows joins its nearest (a cluster of one window was mostly a voice split off).
    """

    threshold: float
    tie: float
    min_windows: int


#: The rule for wideband and for narrowband (telephone) speech, the count found from the windows
#: that hold a decoded word (:func:`cluster_heard`): a narrow band brings voices closer together.
#: Each chosen on the development conversations of its band (``python -m bench.diarization``;
#: docs/diarization.md).
COUNT_RULES = {
    "wide": CountRule(threshold=0.3, tie=0.02, min_windows=1),
    "narrow": CountRule(threshold=0.3, tie=0.02, min_windows=1),
}
#: The rules where every window is clustered (no words, or too few: :func:`cluster_heard`), chosen
#: the same way with the count found from every window.
EVERY_WINDOW_RULES = {
    "wide": CountRule(threshold=0.3, tie=0.02, min_windows=1),
    "narrow": CountRule(threshold=0.3, tie=0.02, min_windows=2),
}
#: The count is found from the windows that hold a decoded word only where at least this share of
#: the windows do (:func:`cluster_heard`); else the decoder heard too little to trust. A safeguard,
#: not chosen from data (on the evaluation's conversations far more of the windows hold a word).
MIN_WORD_WINDOWS_SHARE = 0.5
#: The most speakers a recording is split into when the job names no number.
MAX_SPEAKERS = 8
#: Resolution of the speaker turns, seconds.
FRAME_SECONDS = 0.1
#: A turn shorter than this between two turns of one other speaker is taken as that speaker's.
MIN_TURN_SECONDS = 0.5
#: VAD for diarization: tighter than the decoder's (a padded stretch counts as speech in the DER).
VAD_MIN_SILENCE_MS = 250
VAD_PAD_MS = 50
#: Silero's speech threshold for diarization (its default is 0.5, which missed quiet speakers):
#: chosen on the development conversations, a poor-microphone version of each clean one included
#: (``python -m bench.diarization_vad``; docs/diarization.md).
VAD_THRESHOLD = 0.4

#: torch's CPU threads for the encoder where nothing says otherwise (a worker child gives it as many
#: as its Whisper model has: the two run side by side, diarize_job.start_diarization).
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
    embeddings: np.ndarray  #: (n, EMBEDDING_DIM) L2-normalised
    narrowband: bool = False  #: the speech is band-limited to a telephone band (:func:`is_narrowband`)

    @property
    def band(self) -> str:
        """``"narrow"`` or ``"wide"``: which :data:`COUNT_RULES` entry fits these windows."""
        return "narrow" if self.narrowband else "wide"

    @classmethod
    def join(cls, parts: Sequence[Windows]) -> Windows:
        """Several pieces' windows (times already in the whole file) as one set; narrowband when
        most of the speech is."""
        seconds = [sum(b - a for a, b in part.speech) for part in parts]
        narrow = sum(s for s, part in zip(seconds, parts, strict=True) if part.narrowband)
        return cls(
            speech=[span for part in parts for span in part.speech],
            times=np.concatenate([p.times for p in parts]) if parts else np.zeros((0, 2)),
            embeddings=(
                np.concatenate([p.embeddings for p in parts]) if parts else np.zeros((0, EMBEDDING_DIM))
            ),
            narrowband=narrow > sum(seconds) / 2,
        )


@dataclass(frozen=True)
class Diarization:
    """The turns of a recording and the windows they were found from."""

    turns: list[Turn]
    windows: Windows
    labels: np.ndarray  #: the speaker of each window
    seconds: float  #: time it took


def warm_encoder(threads: int = ENCODER_THREADS) -> float:
    """Load the encoder, embed one second of noise and cluster once; returns the seconds it took.

    Args:
        threads: torch's CPU threads in this process (:data:`ENCODER_THREADS` by default).
    """
    import torch

    started = time.perf_counter()
    torch.set_num_threads(threads)
    noise = np.random.default_rng(0).standard_normal(SAMPLE_RATE).astype(np.float32) * 0.01
    encoder = get_encoder()
    embedding = encoder.embed([encoder.features(noise)])
    cluster(np.concatenate([embedding, embedding[:, ::-1], embedding]))  # imports scipy and sklearn
    return time.perf_counter() - started


def speech_regions(audio: np.ndarray, *, threshold: float = VAD_THRESHOLD) -> list[Span]:
    """Where Silero VAD hears speech in 16 kHz mono ``audio`` (``threshold``: :data:`VAD_THRESHOLD`)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    stamps = get_speech_timestamps(
        audio,
        # Stretches of at most 30 s keep the frame-by-window matrices of speaker_turns small.
        VadOptions(
            threshold=threshold,
            min_silence_duration_ms=VAD_MIN_SILENCE_MS,
            speech_pad_ms=VAD_PAD_MS,
            max_speech_duration_s=30.0,
        ),
    )
    return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]


def speech_windows(audio: np.ndarray, *, offset: float = 0.0) -> Windows:
    """The speaker windows of the speech Silero VAD hears in ``audio`` (:func:`embed_windows`)."""
    return embed_windows(audio, speech_regions(audio), offset=offset)


def is_narrowband(audio: np.ndarray, speech: Sequence[Span]) -> bool:
    """Whether the ``speech`` of 16 kHz ``audio`` is band-limited like a telephone (:data:`NARROWBAND_DB`)."""
    from scipy.signal import welch

    heard = [audio[round(a * SAMPLE_RATE) : round(b * SAMPLE_RATE)] for a, b in speech]
    samples = np.concatenate(heard) if heard else audio
    if len(samples) < 512:
        return False
    freqs, power = welch(samples[: 120 * SAMPLE_RATE], SAMPLE_RATE, nperseg=512)
    high = float(power[(freqs >= 4300) & (freqs <= 7500)].sum())
    low = float(power[(freqs >= 300) & (freqs <= 3400)].sum())
    return bool(low > 0 and 10 * np.log10(max(high, 1e-30) / low) < NARROWBAND_DB)


def _window_starts(frames: int, size: int, step: int) -> list[int]:
    """Starts of windows of ``size`` frames every ``step`` frames, the last one ending at the end."""
    if frames <= size:
        return [0]
    starts = list(range(0, frames - size + 1, step))
    if starts[-1] + size < frames:
        starts.append(frames - size)
    return starts


def embed_windows(audio: np.ndarray, speech: Sequence[Span], *, offset: float = 0.0) -> Windows:
    """Embed overlapping windows of each stretch of ``speech`` in ``audio``.

    Args:
        offset: seconds ``audio`` starts at in the whole file (a fanned-out piece's start);
            ``speech`` is in ``audio``'s own seconds, the result in the whole file's.
    """
    encoder = get_encoder()
    size = round(EMBEDDING_WINDOW_SECONDS * FRAMES_PER_SECOND)
    step = round(STEP_SECONDS * FRAMES_PER_SECOND)
    features, times = [], []
    for start, end in speech:
        if end - start < MIN_WINDOW_SECONDS:
            continue
        frames = encoder.features(audio[round(start * SAMPLE_RATE) : round(end * SAMPLE_RATE)])
        for first in _window_starts(len(frames), size, step):
            features.append(frames[first : first + size])
            lo = start + first / FRAMES_PER_SECOND
            times.append((lo, min(end, lo + len(features[-1]) / FRAMES_PER_SECOND)))
    embeddings = encoder.embed(features) if features else np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    return Windows(
        speech=[(s + offset, e + offset) for s, e in speech],
        times=np.asarray(times, dtype=np.float64).reshape(-1, 2) + offset,
        embeddings=embeddings,
        narrowband=is_narrowband(audio, speech),
    )


def centroids(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The L2-normalised mean embedding of each label 0..max."""
    sums = np.zeros((int(labels.max()) + 1, embeddings.shape[1]))
    np.add.at(sums, labels, embeddings)
    return sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-9)


def _compact(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0..k-1 without holes."""
    return np.unique(labels, return_inverse=True)[1].reshape(-1)


def _best_count(embeddings: np.ndarray, tree: np.ndarray, lowest: int, highest: int, tie: float) -> int:
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
    return min(count for count, score in scores.items() if score >= best - tie)


def cluster(
    embeddings: np.ndarray,
    *,
    num_speakers: int | None = None,
    min_speakers: int | None = None,
    max_speakers: int | None = None,
    rule: CountRule | None = None,
) -> np.ndarray:
    """The speaker (0..k-1) of each embedding.

    Average-linkage clustering on cosine distances (scipy). Without ``num_speakers``, the count
    is found by ``rule`` (default: wideband speech's, :data:`COUNT_RULES`) from ``min_speakers``
    up to ``max_speakers`` (default :data:`MAX_SPEAKERS`). Then each window moves to its
    nearest centroid, and (the count not given) the rule's smallest speakers join their nearest.
    """
    rule = rule or COUNT_RULES["wide"]
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
        distinct = int(fcluster(tree, rule.threshold, "distance").max())
        wanted = _best_count(embeddings, tree, lowest, min(highest, max(distinct, lowest)), rule.tie)
    labels = _compact(fcluster(tree, min(wanted, count), "maxclust") - 1)
    # One nearest-centroid pass: average linkage leaves windows at a cluster's edge in the
    # wrong cluster more often than their centroid distance says.
    moved = np.argmax(embeddings @ centroids(embeddings, labels).T, axis=1)
    if len(np.unique(moved)) == len(np.unique(labels)):
        labels = moved
    if not num_speakers:
        labels = _without_small(embeddings, _compact(labels), rule.min_windows, lowest)
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


def holding_words(windows: Windows, words: Sequence[Span]) -> np.ndarray:
    """Which of ``windows`` hold the middle of one of the decoder's ``words`` (one bool each)."""
    middles = np.sort(np.asarray([(a + b) / 2 for a, b in words], dtype=np.float64))
    first = np.searchsorted(middles, windows.times[:, 0], side="left")
    return np.asarray(np.searchsorted(middles, windows.times[:, 1], side="right") > first)


def cluster_heard(
    windows: Windows,
    words: Sequence[Span] | None = None,
    *,
    num_speakers: int | None = None,
    min_speakers: int | None = None,
    max_speakers: int | None = None,
    rules: tuple[CountRule, CountRule] | None = None,
) -> np.ndarray:
    """The speaker of each window, the count found from the windows that hold a word.

    A cough, a breath or a filler the decoder writes no word for is no speaker's evidence: a
    voice's such sounds formed tight groups of their own and split it (docs/diarization.md).
    So :func:`cluster` runs over the windows that hold the middle of a decoded word
    (:func:`holding_words`), and the others join their nearest speaker. Without words, or where
    under :data:`MIN_WORD_WINDOWS_SHARE` of the windows hold one (the decoder heard too little
    to trust), every window is clustered.

    Args:
        rules: the count rule of the windows that hold a word, and of every window; default the
            band's :data:`COUNT_RULES` and :data:`EVERY_WINDOW_RULES`.
    """
    counts = {"num_speakers": num_speakers, "min_speakers": min_speakers, "max_speakers": max_speakers}
    heard_rule, every_rule = rules or (COUNT_RULES[windows.band], EVERY_WINDOW_RULES[windows.band])
    embeddings = windows.embeddings
    heard = holding_words(windows, words) if words and len(embeddings) else None
    if heard is None or heard.all() or heard.sum() < max(2, MIN_WORD_WINDOWS_SHARE * len(heard)):
        return cluster(
            embeddings, rule=heard_rule if heard is not None and heard.all() else every_rule, **counts
        )
    some = cluster(embeddings[heard], rule=heard_rule, **counts)
    labels = np.argmax(embeddings @ centroids(embeddings[heard], some).T, axis=1)
    labels[heard] = some
    return _compact(labels)


def label(
    windows: Windows,
    *,
    num_speakers: int | None = None,
    min_speakers: int | None = None,
    max_speakers: int | None = None,
    words: Sequence[Span] | None = None,
) -> tuple[list[Turn], np.ndarray]:
    """Cluster ``windows`` (of one file, or of all its pieces) into speaker turns, by their band's
    rule; with the decoder's ``words`` (``(start, end)`` seconds), the count is found from the
    windows that hold one (:func:`cluster_heard`)."""
    labels = cluster_heard(
        windows, words, num_speakers=num_speakers, min_speakers=min_speakers, max_speakers=max_speakers
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


def stretches_outside(words: Sequence[Span], speech: Sequence[Span]) -> list[Span]:
    """The ``words`` that overlap no span of ``speech``, joined where less than
    :data:`MIN_TURN_SECONDS` apart. A word or span of no length overlaps nothing."""
    # Disjoint and sorted: of them, only the last to start before a word ends can overlap it.
    spans = _merged([(a, b) for a, b in speech if b > a])
    starts = [a for a, _ in spans]
    out: list[list[float]] = []
    for start, end in sorted(words):
        before = bisect.bisect_left(starts, end) - 1
        if end > start and before >= 0 and spans[before][1] > start:
            continue
        if out and start - out[-1][1] < MIN_TURN_SECONDS:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([float(start), float(end)])
    return [(a, b) for a, b in out]


def embed_stretches(audio: np.ndarray, stretches: Sequence[Span], *, offset: float = 0.0) -> Windows:
    """One window per stretch (widened to :data:`MIN_WINDOW_SECONDS`, kept inside ``audio``): its
    ``speech`` the stretches, its ``times`` the windows. ``audio`` starts at ``offset`` seconds of
    the file, the stretches' times and the result's are the file's. A stretch outside ``audio``,
    or in audio under 0.2 s, gets none."""
    encoder = get_encoder()
    seconds = len(audio) / SAMPLE_RATE
    kept: list[Span] = []
    spans: list[Span] = []
    features: list[np.ndarray] = []
    for start, end in stretches:
        start, end = start - offset, min(end - offset, seconds)
        if start < 0 or start >= seconds:
            continue
        width = max(end - start, MIN_WINDOW_SECONDS)
        first = min(max(0.0, (start + end - width) / 2), max(0.0, seconds - width))
        frames = encoder.features(audio[round(first * SAMPLE_RATE) : round((first + width) * SAMPLE_RATE)])
        if len(frames) >= FRAMES_PER_SECOND * MIN_WINDOW_SECONDS / 2:
            kept.append((start + offset, end + offset))
            spans.append((first + offset, min(seconds, first + width) + offset))
            features.append(frames)
    return Windows(
        speech=kept,
        times=np.asarray(spans, dtype=np.float64).reshape(-1, 2),
        embeddings=encoder.embed(features) if features else np.zeros((0, EMBEDDING_DIM), dtype=np.float32),
    )


def with_stretches(found: Diarization, extra: Windows) -> Diarization:
    """``found`` with each of ``extra``'s stretches (:func:`embed_stretches`) a turn of the speaker
    whose centroid its window resembles most; its window joins ``found``'s. The count does not
    change; speakers are numbered again by their first turn."""
    if not len(extra.embeddings) or not len(found.labels):
        return found
    started = time.perf_counter()
    old = found.windows
    speakers = np.argmax(extra.embeddings @ centroids(old.embeddings, found.labels).T, axis=1)
    windows = Windows(
        speech=[*old.speech, *extra.speech],
        times=np.concatenate([old.times, extra.times]),
        embeddings=np.concatenate([old.embeddings, extra.embeddings.astype(old.embeddings.dtype)]),
        narrowband=old.narrowband,
    )
    added = [Turn(round(a, 3), round(b, 3), int(k)) for (a, b), k in zip(extra.speech, speakers, strict=True)]
    turns, labels = _by_first_turn(
        sorted([*found.turns, *added], key=lambda t: t.start), np.concatenate([found.labels, speakers])
    )
    return Diarization(turns, windows, labels, found.seconds + time.perf_counter() - started)


def with_decoded_speech(audio: np.ndarray, found: Diarization, words: Sequence[Span]) -> Diarization:
    """``found`` with the speech the decoder heard where the VAD heard none.

    Silero misses some voices a decoder still hears (docs/diarization.md). The ``words``
    (``(start, end)`` seconds, from the decoder) that overlap no turn are joined where less than
    :data:`MIN_TURN_SECONDS` apart (:func:`stretches_outside`); each such stretch (widened to
    :data:`MIN_WINDOW_SECONDS`) is embedded as one window (:func:`embed_stretches`) and becomes a
    turn of the speaker whose centroid it resembles most (:func:`with_stretches`). A word timed
    with no length (Whisper gives some) makes a turn of none, whose speaker its words take.
    """
    stretches = stretches_outside(words, [(t.start, t.end) for t in found.turns])
    if not stretches or not len(found.labels):
        return found
    started = time.perf_counter()
    extra = embed_stretches(audio, stretches)
    out = with_stretches(found, extra)
    return replace(out, seconds=found.seconds + time.perf_counter() - started)
