"""The Celery application: settings from ``celeryconfig``, the tasks, one consumer bootstep.

Tasks: ``asr.transcribe`` (worker.tasks.transcribe), ``asr.transcribe_piece`` and
``asr.merge_pieces`` (worker.tasks.fanout), ``asr.transcribe_clip`` (worker.tasks.clips,
cross-job batches), ``asr.detect_language`` (worker.tasks.language), ``asr.info``
(worker.tasks.info), ``asr.deliver_webhook`` (worker.tasks.webhooks). Lifecycle hooks:
:mod:`worker.runtime.hooks`, one ordered list. Consumer bootsteps: requeue what a lost
broker connection stranded, and what a lost node held.
"""

from __future__ import annotations

from celery import Celery

# Registers the asr_info inspect command: `celery inspect` clients import this module only.
import worker.runtime.reports  # noqa: F401
from worker.runtime.nodeloss import RecoverLostNodes
from worker.runtime.recovery import RestoreOrphanedJobs

app = Celery(
    "asr",
    include=[
        "worker.tasks.transcribe",
        "worker.tasks.fanout",
        "worker.tasks.clips",
        "worker.tasks.info",
        "worker.tasks.webhooks",
        "worker.tasks.language",
        # Last: it connects every lifecycle hook, in order, before the worker starts.
        "worker.runtime.hooks",
    ],
)
app.config_from_object("celeryconfig")
app.steps["consumer"].add(RestoreOrphanedJobs)
app.steps["consumer"].add(RecoverLostNodes)
