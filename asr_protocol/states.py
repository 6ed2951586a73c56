"""The states a job goes through, as the result backend stores them (Celery's, plus ``PROGRESS``)."""

from __future__ import annotations

__all__ = ["ENDED_STATES", "PENDING_STATES", "PROGRESS"]

#: A running job's state; its meta holds seconds done, of how many, and the percentage.
PROGRESS = "PROGRESS"
#: States in which a job has not ended yet.
PENDING_STATES = frozenset({"PENDING", "RECEIVED", "STARTED", "RETRY", PROGRESS})
#: States in which a job has ended.
ENDED_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED"})
