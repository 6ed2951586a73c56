"""The producer's errors: one base class, and what a caller may want to tell apart."""

from __future__ import annotations

__all__ = ["BrokerUnavailableError", "JobTimeoutError", "ProducerError", "TranscriptionFailed"]


class ProducerError(Exception):
    """Base class of the producer's errors."""


class BrokerUnavailableError(ProducerError):
    """The broker or the result backend cannot be reached."""


class JobTimeoutError(ProducerError, TimeoutError):
    """A job did not end within the time the caller waited."""


class TranscriptionFailed(ProducerError):
    """The worker failed the job; ``error_type`` is the worker's error class name."""

    def __init__(self, task_id: str, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.task_id = task_id
        self.error_type = error_type
        self.message = message
