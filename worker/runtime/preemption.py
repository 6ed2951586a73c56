"""A preemption notice: SIGTERM hands back, after ``ASR_SHUTDOWN_GRACE`` seconds, the jobs still running.

A spot or preemptible node gets SIGTERM 30-120 s before it is gone. Celery's warm
shutdown (its SIGTERM default) waits for every running job, which a long
transcription outlasts; the job then dies with the node and waits for the
visibility timeout or node-loss recovery. Celery 5.5's *soft shutdown* does what
a notice needs: stop consuming, let running jobs go on for
``worker_soft_shutdown_timeout`` seconds, then cancel those still running and
let kombu restore their unacknowledged (acks_late) messages to the queue when
the channel closes. Celery starts it on SIGQUIT, or on SIGTERM when the
environment sets ``REMAP_SIGTERM=SIGQUIT`` before billiard is imported, which a
worker started as ``celery -A worker worker`` cannot do for itself. So once the
worker is ready, and only when ``ASR_SHUTDOWN_GRACE`` > 0, this module installs
for SIGTERM the same handler ``REMAP_SIGTERM=SIGQUIT`` would
(``celery.apps.worker``: cold shutdown with ``on_cold_shutdown``).

Caveat from Celery's implementation: the grace is a plain sleep in the main
process, so a worker whose jobs all end sooner still waits the full grace, and
a job that ended during it may be requeued; its redelivery finds the SUCCESS
result and is skipped (``worker_deduplicate_successful_tasks``).
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

__all__ = ["install_preemption_handler", "on_worker_ready"]

log = logging.getLogger(__name__)


def install_preemption_handler(worker: Any) -> bool:
    """Make SIGTERM start the soft shutdown on ``worker``; False when the grace is 0 (warm shutdown kept)."""
    grace = float(worker.app.conf.worker_soft_shutdown_timeout or 0)
    if grace <= 0:
        return False
    from celery.apps import worker as apps_worker
    from celery.platforms import EX_FAILURE

    # The handler REMAP_SIGTERM=SIGQUIT installs (celery/apps/worker.py, Celery >= 5.5).
    install = partial(
        apps_worker._shutdown_handler,
        sig="SIGTERM",
        how="Cold",
        callback=apps_worker.on_cold_shutdown,
        exitcode=EX_FAILURE,
    )
    install(worker)
    log.info("SIGTERM: stop taking jobs, requeue those still running after %g s (ASR_SHUTDOWN_GRACE)", grace)
    return True


def on_worker_ready(sender: Any = None, **_: Any) -> None:
    worker = getattr(sender, "controller", None)
    if worker is not None and getattr(worker, "app", None) is not None:
        install_preemption_handler(worker)
