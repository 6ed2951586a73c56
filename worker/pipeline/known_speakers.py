"""Names for known speakers: a speaker whose voice matches a reference recording takes its name.

Pure code, no Celery. Each reference (2-10 s of one voice) is embedded like the job's
audio (:func:`worker.pipeline.diarization.embed_windows` over its speech) and averaged.
Speakers found by the clustering and references are paired one to one by the most
similar (Hungarian assignment on cosine similarities, scipy); a pair at least
:data:`MATCH_THRESHOLD` alike names the speaker, the others keep ``SPEAKER_xx``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import ExitStack

import numpy as np

from worker.pipeline.audio import SAMPLE_RATE
from worker.pipeline.diarization import Windows, centroids, embed_windows, speech_regions
from worker.pipeline.errors import InputError, InvalidOptionsError
from worker.pipeline.settings import Settings

__all__ = [
    "MATCH_THRESHOLD",
    "load_references",
    "match_names",
    "reference_embedding",
]

log = logging.getLogger(__name__)

#: Cosine similarity from which a speaker takes a reference's name: chosen on the development
#: speakers (``python -m bench.diarization``, docs/diarization.md), its false-name rate measured on test.
MATCH_THRESHOLD = 0.85
#: How long a reference recording may be (seconds).
MIN_REFERENCE_SECONDS = 2.0
MAX_REFERENCE_SECONDS = 10.0


def reference_embedding(audio: np.ndarray) -> np.ndarray | None:
    """The mean embedding (L2-normalised) of the speech in 16 kHz mono ``audio``; None if it has none."""
    speech = speech_regions(audio) or [(0.0, len(audio) / SAMPLE_RATE)]
    windows = embed_windows(audio, speech)
    if not len(windows.embeddings):
        return None
    mean = windows.embeddings.mean(axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-9)


def match_names(
    windows: Windows,
    labels: np.ndarray,
    references: Mapping[str, np.ndarray],
    threshold: float = MATCH_THRESHOLD,
) -> dict[int, str]:
    """The name of each found speaker (by label) whose centroid matches a reference one to one."""
    if not references or not len(labels):
        return {}
    from scipy.optimize import linear_sum_assignment

    names = list(references)
    similarity = centroids(windows.embeddings, labels) @ np.stack([references[n] for n in names]).T
    rows, cols = linear_sum_assignment(-similarity)
    return {int(r): names[c] for r, c in zip(rows, cols, strict=True) if similarity[r, c] >= threshold}


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


def load_references(known: tuple[tuple[str, str], ...] | None, settings: Settings) -> dict[str, np.ndarray]:
    """Each known speaker's reference embedding, read through the job's source rules.

    Raises:
        InvalidOptionsError: a reference is not there, not allowed, not audio, too short or
            too long, or has no speech.
        TransientError: the store failed; a retry may succeed.
    """
    out: dict[str, np.ndarray] = {}
    with ExitStack() as holds:
        for name, source in known or ():
            embedding = reference_embedding(_decoded(name, source, settings, holds))
            if embedding is None:
                raise InvalidOptionsError(
                    f"option known_speakers[{name!r}]: no speech heard in the reference"
                )
            out[name] = embedding
    if out:
        log.info("read %d known speaker reference(s)", len(out))
    return out
