"""The Celery application: settings from ``celeryconfig``, the tasks, and their lifecycle hooks.

Tasks: ``asr.transcribe`` (worker.tasks), ``asr.detect_language`` (worker.language),
``asr.info`` (worker.info), ``asr.deliver_webhook`` (worker.webhooks).
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from worker.errors import InputError, TransientError

app = Celery("asr", include=["worker.tasks", "worker.info", "worker.webhooks", "worker.language"])
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

# Order matters: the model's lifecycle handlers connect before worker.info's,
# which reports what they loaded; worker.info also registers the asr_info
# inspect command for `celery -A worker inspect asr_info`.
# isort: off
import worker.signals  # noqa: E402
import worker.info  # noqa: E402,F401
from worker.recovery import RestoreOrphanedJobs  # noqa: E402
# isort: on

app.steps["consumer"].add(RestoreOrphanedJobs)
