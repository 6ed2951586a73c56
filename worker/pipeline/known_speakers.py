"""Names for known speakers: a speaker whose voice matches a reference recording takes its name.

Pure code, no Celery. Each reference (2-10 s of one voice) is embedded like the job's
audio (:func:`worker.pipeline.diarization.embed_windows` over its speech) and averaged,
once as recorded and once through a telephone band (300-3400 Hz, 8 kHz): a narrowband
recording (:func:`worker.pipeline.diarization.is_narrowband`) is matched against the
second, as a voice heard over the phone sounds unlike its studio recording. Speakers found
by the clustering and references are paired one to one by the most similar (Hungarian
assignment on cosine similarities, scipy); a pair at least :data:`MATCH_THRESHOLDS` (of
the recording's band) alike names the speaker, the others keep ``SPEAKER_xx``. Then each turn
of a named speaker keeps the name only if its own windows are :data:`TURN_THRESHOLDS` alike
to the reference (:func:`name_turns`): a phrase of another voice that the clustering put in a
known speaker's cluster would otherwise carry a name not its own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np

from worker.pipeline.audio import SAMPLE_RATE
from worker.pipeline.diarization import Turn, Windows, centroids, embed_windows, speech_regions
from worker.pipeline.errors import InputError, InvalidOptionsError
from worker.pipeline.settings import Settings

__all__ = [
    "MATCH_THRESHOLDS",
    "TURN_THRESHOLDS",
    "Reference",
    "load_references",
    "match_names",
    "name_turns",
    "reference_embedding",
    "reference_of",
    "telephone_band",
]

log = logging.getLogger(__name__)

#: Cosine similarity from which a speaker takes a reference's name, for wideband and narrowband
#: recordings: each chosen on the development conversations of its band (``python -m
#: bench.diarization``, docs/diarization.md), its false-name rate measured on test.
MATCH_THRESHOLDS = {"wide": 0.325, "narrow": 0.7}
#: Cosine similarity between a named speaker's turn (the mean of the windows centred in it) and
#: the reference from which the turn keeps the name; chosen with MATCH_THRESHOLDS, on development.
#: A turn that no window overlaps (a stretch too short to embed) never keeps a name.
TURN_THRESHOLDS = {"wide": 0.15, "narrow": 0.25}
#: The telephone band a narrowband recording's references are heard through (Hz).
TELEPHONE_BAND = (300.0, 3400.0)
#: How long a reference recording may be (seconds).
MIN_REFERENCE_SECONDS = 2.0
MAX_REFERENCE_SECONDS = 10.0


@dataclass(frozen=True)
class Reference:
    """A known speaker's voice: mean embeddings of the recording as it is and through a telephone band."""

    wide: np.ndarray
    narrow: np.ndarray

    def heard(self, band: str) -> np.ndarray:
        """The embedding to compare with speech of ``band`` (``"wide"`` or ``"narrow"``)."""
        return self.narrow if band == "narrow" else self.wide


def telephone_band(audio: np.ndarray) -> np.ndarray:
    """16 kHz ``audio`` as a telephone carries it: :data:`TELEPHONE_BAND`, sampled at 8 kHz."""
    from scipy.signal import butter, resample_poly, sosfiltfilt

    band = sosfiltfilt(butter(6, TELEPHONE_BAND, "bandpass", fs=SAMPLE_RATE, output="sos"), audio)
    return resample_poly(resample_poly(band, 1, 2), 2, 1)[: len(audio)].astype(np.float32)


def reference_embedding(audio: np.ndarray) -> np.ndarray | None:
    """The mean embedding (L2-normalised) of the speech in 16 kHz mono ``audio``; None if it has none."""
    speech = speech_regions(audio) or [(0.0, len(audio) / SAMPLE_RATE)]
    windows = embed_windows(audio, speech)
    if not len(windows.embeddings):
        return None
    mean = windows.embeddings.mean(axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-9)


def reference_of(audio: np.ndarray) -> Reference | None:
    """The :class:`Reference` of a recording of one voice; None if it has no speech."""
    wide = reference_embedding(audio)
    narrow = reference_embedding(telephone_band(audio))
    return None if wide is None or narrow is None else Reference(wide, narrow)


def match_names(
    windows: Windows,
    labels: np.ndarray,
    references: Mapping[str, Reference],
    threshold: float | None = None,
) -> dict[int, str]:
    """The name of each found speaker (by label) whose centroid matches a reference one to one,
    each reference heard in the band of ``windows`` (threshold: :data:`MATCH_THRESHOLDS` of that band)."""
    if not references or not len(labels):
        return {}
    from scipy.optimize import linear_sum_assignment

    if threshold is None:
        threshold = MATCH_THRESHOLDS[windows.band]
    names = list(references)
    heard = np.stack([references[n].heard(windows.band) for n in names])
    similarity = centroids(windows.embeddings, labels) @ heard.T
    rows, cols = linear_sum_assignment(-similarity)
    return {int(r): names[c] for r, c in zip(rows, cols, strict=True) if similarity[r, c] >= threshold}


def _turn_embedding(windows: Windows, turn: Turn) -> np.ndarray | None:
    """The mean embedding of the windows centred in ``turn`` (else of those overlapping it)."""
    centres = windows.times.mean(axis=1)
    inside = (centres >= turn.start) & (centres <= turn.end)
    if not inside.any():
        inside = (windows.times[:, 1] > turn.start) & (windows.times[:, 0] < turn.end)
    if not inside.any():
        return None
    mean = windows.embeddings[inside].mean(axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-9)


def name_turns(
    windows: Windows,
    turns: list[Turn],
    labels: np.ndarray,
    references: Mapping[str, Reference],
    *,
    threshold: float | None = None,
    turn_threshold: float | None = None,
) -> tuple[list[Turn], dict[int, str]]:
    """The names of the found speakers (:func:`match_names`), kept on the turns that match too.

    A named speaker's turn whose own windows are less than ``turn_threshold`` alike to the
    reference (default: :data:`TURN_THRESHOLDS` of the band) goes to a new, unnamed speaker
    numbered after the found ones (one per named speaker), so its words read ``SPEAKER_xx``.

    Returns:
        The turns, with such turns moved, and the name of each named speaker by number.
    """
    names = match_names(windows, labels, references, threshold)
    if not names:
        return turns, names
    if turn_threshold is None:
        turn_threshold = TURN_THRESHOLDS[windows.band]
    unnamed: dict[int, int] = {}
    first_free = max([int(labels.max()) + 1, *(t.speaker + 1 for t in turns)])
    out = []
    for turn in turns:
        name = names.get(turn.speaker)
        embedding = None if name is None else _turn_embedding(windows, turn)
        if name is not None and (
            embedding is None or float(embedding @ references[name].heard(windows.band)) < turn_threshold
        ):
            speaker = unnamed.setdefault(turn.speaker, first_free + len(unnamed))
            turn = Turn(turn.start, turn.end, speaker)
        out.append(turn)
    return out, names


def _decoded(name: str, source: str, settings: Settings, holds: ExitStack) -> np.ndarray:
    from worker.pipeline.audio import decode_tracks, probe_duration
    from worker.pipeline.spool import open_audio

    try:
        path = holds.enter_context(open_audio(source, settings))
        probed = probe_duration(path)  # an hour-long "reference" is refused before it is decoded
        tracks, _ = ([], None) if (probed or 0) > 2 * MAX_REFERENCE_SECONDS else decode_tracks(path, None)
    except InvalidOptionsError:
        raise
    except InputError as exc:  # not there, not allowed, not audio: the option is at fault
        raise InvalidOptionsError(f"option known_speakers[{name!r}]: {exc}") from None
    seconds = len(tracks[0]) / SAMPLE_RATE if tracks else float(probed or 0.0)
    if not MIN_REFERENCE_SECONDS <= seconds <= MAX_REFERENCE_SECONDS:
        raise InvalidOptionsError(
            f"option known_speakers[{name!r}]: the reference lasts {seconds:.1f} s; give "
            f"{MIN_REFERENCE_SECONDS:g} to {MAX_REFERENCE_SECONDS:g} s of that speaker alone"
        )
    return tracks[0]


def load_references(known: tuple[tuple[str, str], ...] | None, settings: Settings) -> dict[str, Reference]:
    """Each known speaker's :class:`Reference`, read through the job's source rules.

    Raises:
        InvalidOptionsError: a reference is not there, not allowed, not audio, too short or
            too long, or has no speech.
        TransientError: the store failed; a retry may succeed.
    """
    out: dict[str, Reference] = {}
    with ExitStack() as holds:
        for name, source in known or ():
            embedding = reference_of(_decoded(name, source, settings, holds))
            if embedding is None:
                raise InvalidOptionsError(
                    f"option known_speakers[{name!r}]: no speech heard in the reference"
                )
            out[name] = embedding
    if out:
        log.info("read %d known speaker reference(s)", len(out))
    return out
