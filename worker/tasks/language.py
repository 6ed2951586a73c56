"""The ``asr.detect_language`` task: which language is spoken, from the first 30 s only.

Cheap next to a transcription: only the head of the file is decoded (a long
recording is not read to the end) and the model runs its encoder once.
An English-only model (the default ``tiny.en``) cannot tell languages apart;
it refuses with :class:`InvalidOptionsError` instead of guessing "en".
"""

from __future__ import annotations

from typing import Any

from asr_protocol.names import DETECT_LANGUAGE_TASK
from worker.celery import app
from worker.pipeline.audio import SAMPLE_RATE, decode_head
from worker.pipeline.errors import AudioDecodeError, InvalidOptionsError
from worker.pipeline.results import worker_facts
from worker.pipeline.urls import is_url, mask_url
from worker.tasks.base import AudioTask

__all__ = ["detect_language"]

#: How many of the most likely languages the result lists.
TOP = 5


@app.task(name=DETECT_LANGUAGE_TASK, base=AudioTask, bind=True)
def detect_language(self: AudioTask, audio_path: Any) -> dict[str, Any]:
    """Detect the spoken language of ``audio_path`` from its first 30 s.

    Returns:
        ``{"audio_path", "language", "probability", "top": [{"language", "probability"}] * 5,
        "seconds", "model", "worker"}``.

    Raises:
        InvalidOptionsError: the worker's model is English-only.
        InputError: the path or the audio is bad (the same checks as ``asr.transcribe``).
    """
    with self.job() as job:
        path = job.audio_path(audio_path, probe=False)
        model, config = job.model()
        if not config["multilingual"]:
            raise InvalidOptionsError(
                f"model {job.settings.model_id} is English-only; language detection needs a multilingual "
                "model (ASR_MODEL_ID=base, small, medium, large-v3, ...)"
            )
        audio = decode_head(path)
        if audio.size == 0:
            raise AudioDecodeError(f"{path} has no audio samples to detect a language from")
        language, probability, ranked = model.detect_language(audio=audio)
        return {
            "audio_path": mask_url(audio_path) if is_url(audio_path) else str(audio_path),
            "language": language,
            "probability": round(float(probability), 4),
            "top": [{"language": code, "probability": round(float(p), 4)} for code, p in ranked[:TOP]],
            "seconds": round(audio.size / SAMPLE_RATE, 3),
            "model": job.settings.model_id,
            "worker": worker_facts(self.request.hostname),
        }
