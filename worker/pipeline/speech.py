"""Where the speech is: VAD stretches, the windows a batched decode reads, the stretches a transcript missed.

The coverage check behind "no speech lost": every stretch the VAD
hears as speech for :data:`MIN_GAP_SECONDS` or more must hold words of the
transcript. :func:`uncovered` finds the ones that do not, for the decoder to
read again and, if they stay empty, for the result to report as ``gaps``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from worker.pipeline.audio import SAMPLE_RATE

__all__ = [
    "MIN_GAP_SECONDS",
    "WINDOW_SECONDS",
    "Span",
    "missed_speech",
    "speech_onset",
    "speech_spans",
    "split_points",
    "uncovered",
]

#: Whisper hears 30 s at a time: the longest window a decoder reads in one pass.
WINDOW_SECONDS = 30.0
#: Silero's speech probability above which a 32 ms frame counts as speech (its own default).
VAD_THRESHOLD = 0.5
#: Silence shorter than this does not end a stretch of speech (the batched pipeline's own value).
MIN_SILENCE_MS = 160
#: Each stretch keeps this much audio on either side, so a soft first or last syllable is read.
SPEECH_PAD_MS = 200
#: Speech at least this long without a word is a gap: shorter ones are breaths and fillers.
MIN_GAP_SECONDS = 1.0
#: Word timings are cross-attention estimates: a word counts for this much audio on either side.
WORD_SLACK = 0.25
#: Unheard parts of speech closer than this, with no heard word between them, are one stretch.
JOIN_SECONDS = 0.4

#: ``(start, end)`` in seconds.
Span = tuple[float, float]


def speech_spans(audio: np.ndarray) -> list[Span]:
    """The stretches of 16 kHz mono ``audio`` that Silero VAD hears as speech, each at most one window."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    stamps = get_speech_timestamps(
        audio,
        VadOptions(
            threshold=VAD_THRESHOLD,
            min_silence_duration_ms=MIN_SILENCE_MS,
            speech_pad_ms=SPEECH_PAD_MS,
            max_speech_duration_s=WINDOW_SECONDS,
        ),
    )
    return [(stamp["start"] / SAMPLE_RATE, stamp["end"] / SAMPLE_RATE) for stamp in stamps]


def split_points(
    audio: np.ndarray, max_seconds: float, *, frame_seconds: float = 0.1
) -> list[tuple[int, int]]:
    """Cut ``audio`` into pieces of at most ``max_seconds``, each cut at the quietest moment.

    The cut before each limit falls in the quietest ``frame_seconds`` frame of the
    last quarter of the piece (at most its last 30 s), so it lands in a pause
    between words, not inside one. ``max_seconds`` 0 keeps the audio whole.

    Returns:
        ``(start, end)`` sample indices that cover the audio without gaps or overlap.
    """
    total = len(audio)
    longest = int(max_seconds * SAMPLE_RATE)
    if not max_seconds or total <= longest:
        return [(0, total)]
    search = int(min(30.0, max_seconds / 4) * SAMPLE_RATE)
    frame = max(1, int(frame_seconds * SAMPLE_RATE))
    bounds = []
    start = 0
    while total - start > longest:
        window = audio[start + longest - search : start + longest]
        usable = len(window) // frame * frame
        energy = np.square(window[:usable].reshape(-1, frame)).mean(axis=1)
        cut = start + longest - search + int(np.argmin(energy)) * frame + frame // 2
        bounds.append((start, cut))
        start = cut
    bounds.append((start, total))
    return bounds


def uncovered(
    speech: Sequence[Span],
    heard: Sequence[Span],
    *,
    min_seconds: float = MIN_GAP_SECONDS,
    slack: float = WORD_SLACK,
    join: float = JOIN_SECONDS,
) -> list[Span]:
    """The stretches of ``speech`` that no ``heard`` span reaches, with ``min_seconds`` of speech or more.

    Parts of speech that no word reaches and that lie less than ``join`` apart are one
    stretch: Silero splits a phrase at each short pause ("ask not | what"), and a
    phrase missed whole must not pass as several breaths.

    Args:
        speech: stretches the VAD marked as speech.
        heard: the times of the transcript's words (or segments), each widened by ``slack``.
    """
    covered = _merged([(start - slack, end + slack) for start, end in heard])
    parts: list[tuple[float, float, bool]] = []  # (start, end, a heard word follows it)
    for start, end in speech:
        cursor = start
        for cover_start, cover_end in covered:
            if cover_end <= cursor:
                continue
            if cover_start >= end:
                break
            if cover_start > cursor:
                parts.append((cursor, cover_start, True))
            cursor = max(cursor, cover_end)
        if end > cursor:
            parts.append((cursor, end, False))
    stretches: list[list[Span]] = []
    joins = False
    for start, end, word_after in parts:
        if joins and start - stretches[-1][-1][1] < join:
            stretches[-1].append((start, end))
        else:
            stretches.append([(start, end)])
        joins = not word_after
    return [
        (round(float(stretch[0][0]), 3), round(float(stretch[-1][1]), 3))
        for stretch in stretches
        if sum(end - start for start, end in stretch) >= min_seconds
    ]


def missed_speech(audio: np.ndarray, heard: Sequence[Span]) -> list[Span]:
    """The stretches of speech in 16 kHz mono ``audio`` that no ``heard`` span reaches.

    The VAD runs only where nothing was heard (pauses, the ends, any stretch a decoder
    skipped), which keeps the check cheap, and it starts afresh on each such stretch:
    after loud speech its state made it deaf to a quiet speaker.
    """
    silent = uncovered([(0.0, len(audio) / SAMPLE_RATE)], heard)
    speech = [
        (start + s, start + e)
        for start, end in silent
        for s, e in speech_spans(audio[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)])
    ]
    return uncovered(speech, heard)


def speech_onset(audio: np.ndarray, start: float, end: float, *, frame_seconds: float = 0.1) -> float:
    """Where the sound of ``audio[start:end]`` begins: ``start`` moved past a quiet lead-in.

    Whisper stamps a segment from the end of the one before (the first from 0.0),
    so a segment after a silence starts in it. Without word timings this finds the
    first frame at least a tenth as loud as the segment's loud frames (its 90th
    percentile), less :data:`SPEECH_PAD_MS`; a lead-in under 0.5 s is kept. Pure
    numpy, cheap enough for every segment.
    """
    first, last = (
        int(start * SAMPLE_RATE),
        min(int(end * SAMPLE_RATE), len(audio)),
    )  # Whisper may stamp past the end
    frame = max(1, int(frame_seconds * SAMPLE_RATE))
    count = (last - first) // frame
    if count < 2:
        return start
    rms = np.sqrt(np.square(audio[first : first + count * frame].reshape(count, frame)).mean(axis=1))
    loud = float(np.percentile(rms, 90))
    if loud <= 0.0:
        return start
    onset = int(np.argmax(rms >= 0.1 * loud)) * frame_seconds - SPEECH_PAD_MS / 1000
    return round(start + onset, 3) if onset >= 0.5 else start


def _merged(spans: Sequence[Span]) -> list[Span]:
    """``spans`` sorted, with overlapping ones joined."""
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
