"""Conversations built from real single speakers, with speaker turns, to evaluate diarization.

A conversation of 2 to 6 speakers (two-speaker ones half of them the same gender)
takes each speaker's speech from one recording session and
alternates turns of 1 to 15 s, each cut in the source's pauses (one or more of its
VAD phrases, with the pauses between them), with 0.3-1.2 s of silence between turns
and, after a fifth of the turns, a short back-channel (0.3-0.8 s) of another speaker.
Each speaker's level is set 0 to 10 dB under a common one. Every conversation comes in
three versions: clean; telephone (300 Hz high-pass, 8 kHz, G.711 mu-law round trip, back
to 16 kHz); noisy (pink noise at 10-20 dB SNR against the speech).

Speakers are split into development and test (seeded, alternating within each gender):
a conversation only has speakers of one side. The truth is each phrase's span.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evaluation.speakers import RATE, Phrase, Speaker, speakers

__all__ = [
    "CONDITIONS",
    "Conversation",
    "conversation_of",
    "conversations",
    "poor_microphone",
    "poor_microphones",
    "split",
    "telephone",
    "with_noise",
]

CONDITIONS = ("clean", "telephone", "noisy")
#: Conversations per number of speakers, on each side of the split.
PER_COUNT = {2: 10, 3: 8, 4: 6, 5: 4, 6: 3}
#: A speaker says at most this much in one conversation (the MFA speaker has a minute).
MAX_SPEAKER_SECONDS = 25.0
#: Speech level every speaker is set under, before their own offset (dBFS RMS).
LEVEL_DBFS = -23.0
#: A speaker on a poor microphone (:func:`poor_microphone`): this many dB quieter than in the
#: clean version, under the microphone's own noise this many dB below their speech.
POOR_MIC_DB = (10.0, 20.0)
POOR_MIC_SNR_DB = (5.0, 15.0)


@dataclass(frozen=True)
class Conversation:
    """One built recording (16 kHz mono) and who speaks when in it."""

    name: str
    condition: str
    audio: np.ndarray
    truth: list[tuple[float, float, str]]  #: (start, end, speaker) of each phrase
    speakers: tuple[str, ...]
    genders: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.speakers)


def split(seed: int = 0) -> dict[str, tuple[Speaker, ...]]:
    """Speakers into ``dev`` and ``test``: each gender shuffled, then dealt alternately."""
    rng = random.Random(seed)
    sides: dict[str, list[Speaker]] = {"dev": [], "test": []}
    turn = 0
    for gender in ("f", "m"):
        group = [s for s in speakers() if s.gender == gender]
        rng.shuffle(group)
        for speaker in group:
            sides[("dev", "test")[turn % 2]].append(speaker)
            turn += 1
    return {side: tuple(group) for side, group in sides.items()}


def _level(audio: np.ndarray, dbfs: float) -> np.ndarray:
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) or 1e-9
    return (audio * (10 ** (dbfs / 20) / rms)).astype(np.float32)


def _turn(speaker: Speaker, start: int, target: float) -> list[Phrase]:
    """Phrases from ``start`` on, in the source's order, up to about ``target`` seconds."""
    out = [speaker.phrases[start]]
    length = len(out[0].audio) / RATE
    for phrase in speaker.phrases[start + 1 :]:
        if phrase.region != out[-1].region or length >= target:
            break
        if length + phrase.gap_before + len(phrase.audio) / RATE > target + 1.0:
            break
        out.append(phrase)
        length += phrase.gap_before + len(phrase.audio) / RATE
    return out


def _backchannel(speaker: Speaker, rng: random.Random) -> np.ndarray:
    """0.3-0.8 s of ``speaker``: a short phrase of theirs, or a faded cut of a longer one."""
    short = [p.audio for p in speaker.phrases if len(p.audio) <= 0.8 * RATE]
    if short:
        return rng.choice(short)
    phrase = rng.choice(speaker.phrases).audio
    size = min(len(phrase), round(rng.uniform(0.3, 0.8) * RATE))
    first = rng.randrange(0, len(phrase) - size + 1)
    fade = np.minimum(1.0, np.minimum(np.arange(size), np.arange(size)[::-1]) / (0.02 * RATE))
    return (phrase[first : first + size] * fade).astype(np.float32)


def _build(name: str, chosen: Sequence[Speaker], rng: random.Random) -> Conversation:
    gains = {s.name: LEVEL_DBFS - rng.uniform(0.0, 10.0) for s in chosen}
    sessions = {s.name: rng.choice(sorted({p.session for p in s.phrases})) for s in chosen}
    starts: dict[str, list[int]] = {}
    for s in chosen:
        own = [i for i, p in enumerate(s.phrases) if p.session == sessions[s.name]]
        starts[s.name] = rng.sample(own, len(own))
    said = dict.fromkeys(gains, 0.0)
    parts: list[np.ndarray] = []
    truth: list[tuple[float, float, str]] = []
    now = 0.0

    def put(audio: np.ndarray, who: str, gap: float) -> None:
        nonlocal now
        parts.append(np.zeros(round(gap * RATE), dtype=np.float32))
        parts.append(_level(audio, gains[who]))
        now += gap
        truth.append((round(now, 3), round(now + len(audio) / RATE, 3), who))
        now += len(audio) / RATE

    previous = None
    while True:
        ready = [
            s for s in chosen if starts[s.name] and said[s.name] < MAX_SPEAKER_SECONDS and s.name != previous
        ]
        if not ready:
            break
        speaker = rng.choice(ready)
        first = True
        for phrase in _turn(speaker, starts[speaker.name].pop(), rng.uniform(1.0, 15.0)):
            put(phrase.audio, speaker.name, rng.uniform(0.3, 1.2) if first else phrase.gap_before)
            said[speaker.name] += len(phrase.audio) / RATE
            first = False
        if rng.random() < 0.2:
            other = rng.choice([s for s in chosen if s.name != speaker.name])
            put(_backchannel(other, rng), other.name, rng.uniform(0.3, 0.8))
        previous = speaker.name
    parts.append(np.zeros(round(0.5 * RATE), dtype=np.float32))
    return Conversation(
        name,
        "clean",
        np.concatenate(parts),
        truth,
        tuple(s.name for s in chosen),
        tuple(s.gender for s in chosen),
    )


def telephone(audio: np.ndarray) -> np.ndarray:
    """A telephone channel: 300 Hz high-pass, 8 kHz, G.711 mu-law encoded and decoded, back at 16 kHz."""
    from scipy.signal import butter, resample_poly, sosfilt

    try:
        import audioop  # the standard library's up to 3.12; the audioop-lts package's after
    except ImportError:  # pragma: no cover
        raise RuntimeError("the telephone version needs audioop (pip install audioop-lts on 3.13+)") from None
    narrow = resample_poly(sosfilt(butter(4, 300, "highpass", fs=RATE, output="sos"), audio), 1, 2)
    pcm = (np.clip(narrow, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    decoded = np.frombuffer(audioop.ulaw2lin(audioop.lin2ulaw(pcm, 2), 2), dtype="<i2") / 32768.0
    return resample_poly(decoded, 2, 1).astype(np.float32)[: len(audio)]


def with_noise(
    audio: np.ndarray, truth: Sequence[tuple[float, float, str]], snr_db: float, seed: int
) -> np.ndarray:
    """``audio`` with pink noise ``snr_db`` under the mean power of its speech."""
    noise = _pink(len(audio), np.random.default_rng(seed))
    speech = np.concatenate([audio[round(a * RATE) : round(b * RATE)] for a, b, _ in truth])
    power = float(np.mean(speech.astype(np.float64) ** 2))
    return (audio + noise * np.sqrt(power / 10 ** (snr_db / 10))).astype(np.float32)


def _pink(samples: int, rng: np.random.Generator) -> np.ndarray:
    """Pink noise of RMS 1."""
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    spectrum /= np.sqrt(np.maximum(np.fft.rfftfreq(samples, 1 / RATE), 20.0))
    noise = np.fft.irfft(spectrum, samples)
    return noise / max(float(np.sqrt(np.mean(noise**2))), 1e-12)


def poor_microphone(clean: Conversation, seed: int) -> tuple[Conversation, str]:
    """``clean`` with one of its speakers (seeded) on a poor microphone, and who that is.

    That speaker's speech is :data:`POOR_MIC_DB` quieter, each of their phrases under pink
    noise :data:`POOR_MIC_SNR_DB` below it that starts and stops with the phrase: a far or
    cheap microphone, the weak line of a call. Not one of :data:`CONDITIONS` (no constant is
    chosen on it); ``python -m bench.diarization --poor-mic`` reports it.
    """
    rng = np.random.default_rng(seed)
    who = clean.speakers[int(rng.integers(len(clean.speakers)))]
    gain = 10 ** (-rng.uniform(*POOR_MIC_DB) / 20)
    snr = rng.uniform(*POOR_MIC_SNR_DB)
    audio = clean.audio.astype(np.float64)
    for start, end, speaker in clean.truth:
        first, last = round(start * RATE), round(end * RATE)
        if speaker != who or last <= first:
            continue
        phrase = audio[first:last] * gain
        level = float(np.sqrt(np.mean(phrase**2)))
        audio[first:last] = phrase + _pink(last - first, rng) * level * 10 ** (-snr / 20)
    return Conversation(clean.name, "poor_mic", audio.astype(np.float32), *_rest(clean)), who


def poor_microphones(conversations: Sequence[Conversation]) -> list[tuple[Conversation, str]]:
    """:func:`poor_microphone` of each clean one of ``conversations``, seeded by its place among
    them (every bench that reports this condition builds the same versions), with who is weak."""
    clean = [c for c in conversations if c.condition == "clean"]
    return [poor_microphone(c, seed=index) for index, c in enumerate(clean)]


def _versions(clean: Conversation, rng: random.Random) -> list[Conversation]:
    snr = rng.uniform(10.0, 20.0)
    return [
        clean,
        Conversation(clean.name, "telephone", telephone(clean.audio), *_rest(clean)),
        Conversation(
            clean.name,
            "noisy",
            with_noise(clean.audio, clean.truth, snr, rng.randrange(2**32)),
            *_rest(clean),
        ),
    ]


def _rest(c: Conversation) -> tuple[list[tuple[float, float, str]], tuple[str, ...], tuple[str, ...]]:
    return c.truth, c.speakers, c.genders


def conversation_of(names: Sequence[str], *, seed: int = 0) -> Conversation:
    """The clean conversation of the speakers ``names`` (``evaluation.speakers``), built like the others."""
    by_name = {s.name: s for s in speakers()}
    return _build("_".join(names), [by_name[n] for n in names], random.Random(f"{seed}:{names}"))


def _pick(group: Sequence[Speaker], count: int, same_gender: bool, rng: random.Random) -> list[Speaker]:
    if same_gender:
        genders = [g for g in ("f", "m") if sum(s.gender == g for s in group) >= count]
        if genders:
            gender = rng.choice(genders)
            return rng.sample([s for s in group if s.gender == gender], count)
    return rng.sample(list(group), count)


def conversations(side: str, *, seed: int = 0, per_count: dict[int, int] | None = None) -> list[Conversation]:
    """The conversations of one side of the split (``dev`` or ``test``), every version of each."""
    group = split(seed)[side]
    rng = random.Random(f"{seed}:{side}")
    out = []
    for count, how_many in (per_count or PER_COUNT).items():
        if count > len(group):
            continue
        for index in range(how_many):
            chosen = _pick(group, count, count == 2 and index % 2 == 0, rng)
            clean = _build(f"{side}_{count}spk_{index:02d}", chosen, rng)
            out += _versions(clean, rng)
    return out
