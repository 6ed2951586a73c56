"""The main process's side of cross-job batching: celery-batches' buffering, with this worker's
settings, and a lost batch's messages returned to the queue (see :mod:`worker.tasks.clips`)."""

from __future__ import annotations

import logging
from typing import Any

from celery_batches import Batches, SimpleRequest
from celery_batches.trace import apply_batches_task

from worker.pipeline.settings import get_settings

__all__ = ["ClipBatches"]

log = logging.getLogger(__name__)


class ClipBatches(Batches):
    """celery-batches' buffering, with this worker's settings and delivery rules."""

    def Strategy(self, task: Batches, app: Any, consumer: Any) -> Any:
        settings = get_settings()
        self.flush_every = settings.clip_batch
        self.flush_interval = settings.clip_wait
        return super().Strategy(task, app, consumer)

    def _do_flush(self) -> None:
        super()._do_flush()
        # celery-batches keeps its timer repeating while jobs come in, so a new job could
        # be flushed at once; stopped here, the next job starts its own full wait.
        timer: Any = getattr(self, "_tref", None)
        if timer is not None and self._buffer.empty() and self._pending.empty():
            timer.cancel()
            self._tref = None

    def flush(self, requests: Any) -> Any:
        # A job revoked while it waited is marked REVOKED (and acknowledged) here.
        live = [request for request in requests if not request.revoked()]
        if not live:
            return None

        def acknowledge(_: Any) -> None:
            for request in live:
                request.acknowledge()

        def requeue(failure: Any) -> None:
            exc = getattr(failure, "exception", failure)
            log.error("clip batch of %d jobs lost (%r); returning them to the queue", len(live), exc)
            for request in live:
                request.reject(requeue=True)

        return self._pool.apply_async(
            apply_batches_task,
            (self, ([SimpleRequest.from_request(r) for r in live],), 0, None),
            callback=acknowledge,
            error_callback=requeue,
            soft_timeout=self.app.conf.task_soft_time_limit,
            timeout=self.app.conf.task_time_limit,
        )
