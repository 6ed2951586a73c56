"""The names of a job's options: what a producer may send, what the worker checks.

The worker checks each option's type and range (``worker/pipeline/options.py``, whose
``TranscribeOptions`` fields are these names, as a unit test keeps them); a producer
refuses an unknown name before it enqueues anything.
"""

from __future__ import annotations

__all__ = ["OPTION_NAMES", "OUTPUT_FORMATS", "PRODUCER_OPTIONS", "WHOLE_JOB_OPTIONS"]

#: The options ``asr.transcribe`` (and ``asr.transcribe_clip``) accepts.
OPTION_NAMES = frozenset(
    {
        "language", "task", "beam_size", "vad_filter", "word_timestamps", "initial_prompt", "hotwords",
        "temperature", "channels", "fanout_seconds", "callback_url", "output_url", "output_formats",
        "diarize", "num_speakers", "min_speakers", "max_speakers", "known_speakers",
    }
)  # fmt: skip
#: Options of the whole job: a fanned-out job's pieces do not get them.
WHOLE_JOB_OPTIONS = frozenset({"callback_url", "fanout_seconds", "output_url", "output_formats"})
#: The producer's own: ``batch`` sends the job as a clip (``asr.transcribe_clip``), never to the worker.
PRODUCER_OPTIONS = frozenset({"batch"})
#: What ``output_formats`` may name (renderers of :mod:`asr_protocol.formats`).
OUTPUT_FORMATS = ("json", "txt", "srt", "vtt", "tsv")
