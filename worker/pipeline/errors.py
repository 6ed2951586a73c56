"""The worker's error hierarchy.

Every error a task can fail with is an :class:`ASRError`. Its class name and
message travel through the result backend to the producer (Celery stores
``exc_type`` and ``exc_message``), so the constructors take one message
string and nothing else.

Errors that a retry cannot fix (:class:`InputError`) are kept apart from
those it can (:class:`TransientError`).
"""

from __future__ import annotations

__all__ = [
    "ASRError",
    "AccessDeniedError",
    "AudioDecodeError",
    "AudioNotFoundError",
    "AudioTooLongError",
    "AudioUnreadableError",
    "ConfigError",
    "DiarizationUnavailableError",
    "EmptyAudioError",
    "FileTooLargeError",
    "InputError",
    "InvalidOptionsError",
    "InvalidPathError",
    "ModelUnavailableError",
    "NotAFileError",
    "PathNotAllowedError",
    "RedeliveryLimitError",
    "TranscriptionTimeoutError",
    "TransientError",
    "WebhookDeliveryError",
]


class ASRError(Exception):
    """Base class of every error raised by the transcription worker."""


class ConfigError(ASRError):
    """The worker's configuration (an environment variable) is invalid."""


class ModelUnavailableError(ASRError):
    """No model can serve the task: ASR is disabled or the model failed to load."""


class DiarizationUnavailableError(ModelUnavailableError):
    """The job asks for speaker labels, but this worker does not diarize (ASR_DIARIZATION is off)."""


class TransientError(ASRError):
    """A failure that may pass: a retry with backoff is worth it."""


class TranscriptionTimeoutError(ASRError):
    """The job ran past its time limit (the soft limit, or its audio-derived deadline)."""


class RedeliveryLimitError(ASRError):
    """The job's worker process died with it too often: it is failed, not run again."""


class WebhookDeliveryError(ASRError):
    """A completion webhook could not be delivered (the job's own result is unaffected)."""


class InputError(ASRError):
    """The job itself is bad; retrying it cannot help."""


class InvalidOptionsError(InputError):
    """An option is unknown, of the wrong type or out of range."""


class InvalidPathError(InputError):
    """The audio path is not a non-empty absolute path string."""


class AudioNotFoundError(InputError):
    """The audio path does not exist."""


class NotAFileError(InputError):
    """The audio path exists but is not a regular file (a directory, say)."""


class PathNotAllowedError(InputError):
    """The audio path lies outside the directories this worker may read."""


class EmptyAudioError(InputError):
    """The audio file has zero bytes."""


class FileTooLargeError(InputError):
    """The audio file is larger than the worker accepts."""


class AudioUnreadableError(InputError):
    """The worker has no permission to read the audio file."""


class AccessDeniedError(AudioUnreadableError):
    """The object store or web server refused the worker access to the audio URL (403)."""


class AudioDecodeError(InputError):
    """The file cannot be read or decoded as audio."""


class AudioTooLongError(InputError):
    """The audio lasts longer than the worker accepts."""
