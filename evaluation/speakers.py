"""The distinct speakers of the project's real audio, each as stretches of solo speech cut in pauses.

Which recordings share a voice was decided from their texts and sources (docs/diarization.md):
the left channel of ``stereo_diarization.wav`` reads the same LibriSpeech sentence as
``librispeech_61-70968-0000.flac`` (one speaker, one recording: only the latter is used);
the five ``librivox_0870..0930`` files are consecutive sentences of one reader's *Sense and
Sensibility*; the three MFA recordings are one man (the "cold" corpora say they are the
acoustic corpus's speaker with a cold). AMI's MEE014 speaks alone for about a second: he is
left out (he stays in the real meeting).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from evaluation.scoring import EVAL_DIR, ROOT

__all__ = ["Phrase", "Speaker", "rttm_turns", "speakers"]

SHARED = ROOT.parent / "shared" / "audio"
RATE = 16000
#: Solo stretches shorter than this are not used (AMI's interjections between overlaps).
MIN_SOLO_SECONDS = 0.5
#: A speaker with this much speech gives its first phrases (at least REFERENCE_SECONDS) as a reference.
MIN_SECONDS_FOR_REFERENCE = 7.0
REFERENCE_SECONDS = 3.0
#: How phrases are cut from the sources: Silero VAD as the worker's diarization ran it before its
#: own VAD was chosen on development (threshold 0.5, pauses from 250 ms, 50 ms pad). Fixed here, so
#: that choosing the worker's VAD does not move the truth it is scored against.
PHRASE_VAD = {
    "threshold": 0.5,
    "min_silence_duration_ms": 250,
    "speech_pad_ms": 50,
    "max_speech_duration_s": 30.0,
}


@dataclass(frozen=True)
class Phrase:
    """One stretch of speech between pauses (Silero VAD on the clean source)."""

    audio: np.ndarray
    region: int  #: phrases of one region follow each other in the source (a turn may join them)
    gap_before: float  #: seconds of pause before it in the source (0 for a region's first)
    #: the recording it comes from: a conversation takes each speaker's phrases from one session
    #: (the MFA speaker's three recordings sound apart: another room, a cold)
    session: int = 0


@dataclass(frozen=True)
class Speaker:
    """A distinct voice, where it comes from, and its phrases."""

    name: str
    gender: str  #: "f" or "m": the corpus's speaker id where it has one, else the median pitch (docs)
    source: str
    phrases: tuple[Phrase, ...]
    #: 3-10 s of their speech kept out of every conversation, to name them (None: too little speech)
    reference: np.ndarray | None = None

    @property
    def seconds(self) -> float:
        return sum(len(p.audio) for p in self.phrases) / RATE


def _read(path: Path, channel: int | None = None) -> np.ndarray:
    from worker.pipeline.audio import decode_tracks

    tracks, _ = decode_tracks(path, None if channel is None else "split")
    return tracks[channel or 0]


def rttm_turns(path: Path) -> list[tuple[float, float, str]]:
    """``(start, end, speaker)`` of each line of an RTTM file."""
    turns = []
    for line in path.read_text().splitlines():
        parts = line.split()
        start, length = float(parts[3]), float(parts[4])
        turns.append((start, start + length, parts[7]))
    return turns


def _solo(turns: Sequence[tuple[float, float, str]], who: str) -> list[tuple[float, float]]:
    """Where ``who`` speaks and nobody else does."""
    spans: list[tuple[float, float]] = []
    for start, end, name in turns:
        if name != who:
            continue
        pieces = [(start, end)]
        for o_start, o_end, other in turns:
            if other == who:
                continue
            pieces = [
                part
                for lo, hi in pieces
                for part in ((lo, min(hi, o_start)), (max(lo, o_end), hi))
                if part[1] - part[0] >= MIN_SOLO_SECONDS
            ]
        spans += pieces
    return sorted(spans)


def _phrases(regions: Sequence[tuple[int, np.ndarray]]) -> tuple[Phrase, ...]:
    """The VAD phrases (:data:`PHRASE_VAD`) of each ``(session, audio)`` region."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    out = []
    for index, (session, audio) in enumerate(regions):
        last_end = None
        stamps = get_speech_timestamps(audio, VadOptions(**PHRASE_VAD))
        for start, end in ((s["start"] / RATE, s["end"] / RATE) for s in stamps):
            clip = audio[round(start * RATE) : round(end * RATE)]
            out.append(Phrase(clip, index, 0.0 if last_end is None else start - last_end, session))
            last_end = end
    return tuple(out)


def _cut(audio: np.ndarray, spans: Sequence[tuple[float, float]]) -> list[np.ndarray]:
    return [audio[round(a * RATE) : round(b * RATE)] for a, b in spans]


#: name, gender, source, and how to read its solo speech (files, or an RTTM speaker's solo spans).
_SOURCES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("jfk", "m", "jfk.flac (J. F. Kennedy, 1961)", ("jfk.flac",)),
    ("hotwords", "f", "hotwords.mp3 (faster-whisper tests)", ("hotwords.mp3",)),
    ("stereo_right", "m", "stereo_diarization.wav right channel", ("stereo_diarization.wav:1",)),
    ("librispeech_61", "m", "LibriSpeech speaker 61", ("eval/librispeech_61-70968-0000.flac",)),
    (
        "librivox_reader",
        "m",
        "LibriVox Sense and Sensibility reader",
        tuple(f"eval/librivox_{n:04d}.wav" for n in (870, 880, 890, 920, 930)),
    ),
    (
        "mfa_speaker",
        "m",
        "Montreal Forced Aligner test corpora",
        ("eval/mfa_acoustic_corpus.wav", "eval/mfa_cold_corpus.wav", "eval/mfa_cold_corpus3.wav"),
    ),
    ("falcon_spk1", "f", "falcon_3spk.wav spk1", ("rttm:falcon_3spk:spk1",)),
    ("falcon_spk2", "m", "falcon_3spk.wav spk2", ("rttm:falcon_3spk:spk2",)),
    ("falcon_spk3", "f", "falcon_3spk.wav spk3", ("rttm:falcon_3spk:spk3",)),
    ("ami_FEE013", "f", "AMI meeting FEE013", ("rttm:ami_meeting_4spk:FEE013",)),
    ("ami_FEE016", "f", "AMI meeting FEE016", ("rttm:ami_meeting_4spk:FEE016",)),
    ("ami_MEO015", "m", "AMI meeting MEO015", ("rttm:ami_meeting_4spk:MEO015",)),
)


def _regions(spec: str) -> list[np.ndarray]:
    if spec.startswith("rttm:"):
        _, stem, who = spec.split(":")
        audio = _read(EVAL_DIR / f"{stem}.wav")
        return _cut(audio, _solo(rttm_turns(EVAL_DIR / f"{stem}.rttm"), who))
    name, _, channel = spec.partition(":")
    return [_read(SHARED / name, int(channel) if channel else None)]


def _with_reference(speaker: Speaker) -> Speaker:
    """``speaker`` with its first phrases (3-10 s) set apart as a reference, if it has enough speech."""
    if speaker.seconds < MIN_SECONDS_FOR_REFERENCE or len(speaker.phrases) < 2:
        return speaker
    taken: list[np.ndarray] = []
    while sum(len(a) for a in taken) < REFERENCE_SECONDS * RATE:
        taken.append(speaker.phrases[len(taken)].audio)
    pause = np.zeros(round(0.3 * RATE), dtype=np.float32)
    reference = np.concatenate([part for clip in taken for part in (clip, pause)])[: 10 * RATE]
    return Speaker(speaker.name, speaker.gender, speaker.source, speaker.phrases[len(taken) :], reference)


@cache
def speakers() -> tuple[Speaker, ...]:
    """Every distinct speaker with its phrases (16 kHz mono), in a fixed order."""
    return tuple(
        _with_reference(
            Speaker(
                name,
                gender,
                source,
                _phrases([(i, r) for i, spec in enumerate(specs) for r in _regions(spec)]),
            )
        )
        for name, gender, source, specs in _SOURCES
    )
