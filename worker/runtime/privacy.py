"""Transcripts stay out of the worker's log.

Celery logs every task's return value at INFO ("Task ... succeeded in 3.1s: {...}"),
which for ``asr.transcribe`` is the whole transcript of a call recording. The
filter below drops the return value from that line; :func:`log_summary` logs
what an operator needs instead: the job, how much audio, how long it took.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["HideReturnValues", "install", "log_summary"]

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
    log.info(
        "%s[%s]: %.1f s of audio, %d segments, %d gaps, language %s, decoded in %.2f s",
        name,
        task_id,
        float(result.get("duration") or 0.0),
        len(result.get("segments") or ()),
        len(result.get("gaps") or ()),
        result.get("language"),
        float(timings.get("transcribe", timings.get("total", 0.0)) or 0.0),
    )
