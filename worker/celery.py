"""The Celery application: settings from ``celeryconfig``, the tasks, one consumer bootstep.

Tasks: ``asr.transcribe`` (worker.tasks.transcribe), ``asr.transcribe_piece`` and
``asr.merge_pieces`` (worker.tasks.fanout), ``asr.transcribe_clip`` (worker.tasks.clips,
cross-job batches), ``asr.detect_language`` (worker.tasks.language), ``asr.info``
(worker.tasks.info), ``asr.deliver_webhook`` (worker.tasks.webhooks). Lifecycle hooks:
:mod:`worker.runtime.hooks`, one ordered list. Consumer bootsteps, on a Redis broker only
(RabbitMQ returns a lost consumer's deliveries itself): requeue what a lost broker
connection stranded, and what a lost node held. Queues: :mod:`asr_protocol.queues`.
"""

from __future__ import annotations

from celery import Celery

# Registers the asr_info inspect command: `celery inspect` clients import this module only.
import worker.runtime.reports  # noqa: F401
from worker.runtime import nodeloss, recovery
from worker.runtime.transport import broker_transport

app = Celery(
    "asr",
    amqp="asr_protocol.queues:JobAMQP",
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
for _module, _step in ((recovery, recovery.RestoreOrphanedJobs), (nodeloss, nodeloss.RecoverLostNodes)):
    if _module.TRANSPORT == broker_transport(app.conf.broker_url):
        app.steps["consumer"].add(_step)
