"""The Celery application: settings from ``celeryconfig``, tasks from ``worker.tasks``."""

from __future__ import annotations

from celery import Celery

app = Celery("asr", include=["worker.tasks", "worker.info", "worker.webhooks", "worker.language"])
app.config_from_object("celeryconfig")

import worker.signals  # noqa: E402,F401  (connects the model's lifecycle handlers)
from worker.recovery import RestoreOrphanedJobs  # noqa: E402

app.steps["consumer"].add(RestoreOrphanedJobs)
