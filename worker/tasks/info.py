"""The ``asr.info`` task: the facts of the child that runs it (see :mod:`worker.runtime.reports`)."""

from __future__ import annotations

from typing import Any

from celery import Task

from asr_protocol.names import INFO_TASK_NAME as TASK_NAME
from worker.celery import app
from worker.runtime.reports import describe_process, publish

__all__ = ["TASK_NAME", "info"]


@app.task(name=TASK_NAME, bind=True)
def info(self: Task) -> dict[str, Any]:
    """The facts of the child that runs this task (see :func:`describe_process`)."""
    record = describe_process(self.request.hostname)
    publish(record)
    return record
