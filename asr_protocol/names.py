"""The names the producer sends and the worker registers: tasks and the default queue.

A producer reaches a task by its name (``send_task``), never by importing it.
"""

from __future__ import annotations

__all__ = [
    "CLIP_TASK_NAME",
    "DEFAULT_QUEUE",
    "DETECT_LANGUAGE_TASK",
    "INFO_TASK_NAME",
    "MERGE_TASK_NAME",
    "PIECE_TASK_NAME",
    "TASK_NAME",
    "WEBHOOK_TASK_NAME",
]

#: A job: one file transcribed (possibly split across the fleet, see the two below).
TASK_NAME = "asr.transcribe"
#: A short clip that a worker may decode in one batch with other jobs' clips.
CLIP_TASK_NAME = "asr.transcribe_clip"
#: One piece of a job split across the fleet; its kwargs name the job (``job_id``).
PIECE_TASK_NAME = "asr.transcribe_piece"
#: The chord body that joins a split job's pieces; it runs under the job's id.
MERGE_TASK_NAME = "asr.merge_pieces"
#: The language spoken in a file's first 30 s.
DETECT_LANGUAGE_TASK = "asr.detect_language"
#: What a worker loaded and how it is set up.
INFO_TASK_NAME = "asr.info"
#: POSTs a job's outcome to its ``callback_url``.
WEBHOOK_TASK_NAME = "asr.deliver_webhook"
#: The queue jobs go to and workers read when ``ASR_QUEUE`` names no other.
DEFAULT_QUEUE = "asr"
