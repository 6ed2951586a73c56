"""Transcripts stay out of the worker's log; URL signatures stay out of the result backend.

Celery logs every task's return value at INFO ("Task ... succeeded in 3.1s: {...}"),
which for ``asr.transcribe`` is the whole transcript of a call recording. The
filter below drops the return value from that line; :func:`log_summary` logs
what an operator needs instead: the job, how much audio, how long it took.

With ``result_extended`` Celery stores a task's ``request.args`` with each of its
states (STARTED, PROGRESS, RETRY, SUCCESS, FAILURE): for a presigned audio URL that is
its signature. :func:`mask_stored_args` masks them as the task starts, before the
tracer stores STARTED (``celery/app/trace.py`` sends ``task_prerun`` first); the task
function has its own copy of the real arguments, and :func:`sent_args` gives them back
to a retry. Only the positional arguments (the audio) are masked: the webhook reads
``callback_url`` from ``request.kwargs``.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from celery.app.task import Context

from asr_protocol.redact import masked

__all__ = ["HideReturnValues", "install", "log_summary", "mask_stored_args", "sent_args"]

log = logging.getLogger("worker.jobs")

#: Celery's success line without its ``%(return_value)s`` (celery/app/trace.py LOG_SUCCESS).
SUCCESS_LINE = "Task %(name)s[%(id)s] succeeded in %(runtime)ss"


class HideReturnValues(logging.Filter):
    """Rewrite Celery's task-success record so the return value is not formatted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, dict) and "return_value" in record.args:
            record.msg = SUCCESS_LINE
            record.args = {key: value for key, value in record.args.items() if key != "return_value"}
            data = getattr(record, "data", None)
            if isinstance(data, dict):
                record.data = {key: value for key, value in data.items() if key != "return_value"}
        return True


def install() -> None:
    """Filter Celery's task tracer logger (it lives for the process, so once is enough)."""
    tracer = logging.getLogger("celery.app.trace")
    if not any(isinstance(f, HideReturnValues) for f in tracer.filters):
        tracer.addFilter(HideReturnValues())


def log_summary(task_id: str | None, name: str, result: Any) -> None:
    """One INFO line per finished job: its shape, never its text."""
    if not isinstance(result, dict) or "segments" not in result:
        return
    timings = result.get("timings") or {}
    seconds = result.get("duration")
    if seconds is None and "start" in result and "end" in result:  # a piece of a split job
        seconds = float(result["end"]) - float(result["start"])
    log.info(
        "%s[%s]: %.1f s of audio, %d segments, %d gaps, language %s, decoded in %.2f s",
        name,
        task_id,
        float(seconds or 0.0),
        len(result.get("segments") or ()),
        len(result.get("gaps") or ()),
        result.get("language"),
        float(timings.get("transcribe", timings.get("total", 0.0)) or 0.0),
    )


def mask_stored_args(task: Task, **_: Any) -> None:
    """``task_prerun``: mask the URLs in the arguments Celery stores, for tasks that read audio.

    A task opts in with a true ``masks_url_args`` attribute (every
    :class:`worker.tasks.base.AudioTask`, and the merge of a split job, which stores its result).
    """
    request = task.request
    if not getattr(task, "masks_url_args", False) or not request.args:
        return
    request.sent_args = request.args
    request.args = masked(request.args)


def sent_args(request: Context) -> Any:
    """The positional arguments the task was sent with (:func:`mask_stored_args` masked ``args``)."""
    return getattr(request, "sent_args", None) or request.args
