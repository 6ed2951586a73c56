"""The Celery application: settings from ``celeryconfig``, the tasks, and their lifecycle hooks.

Tasks: ``asr.transcribe`` (worker.tasks), ``asr.transcribe_piece`` and ``asr.merge_pieces``
(worker.fanout), ``asr.transcribe_clip`` (worker.clips, cross-job batches),
``asr.detect_language`` (worker.language), ``asr.info`` (worker.info),
``asr.deliver_webhook`` (worker.webhooks).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded

from worker.errors import InputError, TranscriptionTimeoutError, TransientError

app = Celery(
    "asr",
    include=[
        "worker.tasks",
        "worker.fanout",
        "worker.clips",
        "worker.info",
        "worker.webhooks",
        "worker.language",
    ],
)
app.config_from_object("celeryconfig")

#: The options of every task that reads an audio file.
AUDIO_TASK_OPTIONS: dict[str, Any] = {
    "bind": True,
    # Bad input is expected in normal operation: logged without a traceback.
    "throws": (InputError,),
    # Only errors a retry can fix are retried; bad input fails at once.
    "autoretry_for": (TransientError,),
    "retry_backoff": True,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 5,
}


@contextmanager
def audio_task_errors(task: Task) -> Iterator[None]:
    """Turn the soft time limit and out-of-memory into the project's typed errors."""
    try:
        yield
    except SoftTimeLimitExceeded:
        limit = (task.request.timelimit or (None, None))[1] or app.conf.task_soft_time_limit
        raise TranscriptionTimeoutError(
            f"job ran past the soft time limit of {limit} s (ASR_SOFT_TIME_LIMIT)"
        ) from None
    except RuntimeError as exc:
        # CTranslate2 reports CUDA out-of-memory as a RuntimeError; a retry may
        # land on a freer GPU or a CPU worker.
        if "out of memory" in str(exc).lower():
            raise TransientError(f"out of memory while transcribing: {exc}") from None
        raise


# Order matters: the model's lifecycle handlers connect before worker.info's,
# which reports what they loaded; worker.info also registers the asr_info
# inspect command for `celery -A worker inspect asr_info`.
# isort: off
import worker.signals  # noqa: E402
import worker.info  # noqa: E402,F401
from worker.recovery import RestoreOrphanedJobs  # noqa: E402
from worker import liveness, preemption  # noqa: E402,F401  (node records; SIGTERM grace)
from worker.nodeloss import RecoverLostNodes  # noqa: E402
# isort: on

app.steps["consumer"].add(RestoreOrphanedJobs)
app.steps["consumer"].add(RecoverLostNodes)
