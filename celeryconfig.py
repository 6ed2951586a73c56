"""Celery settings for the transcription worker, read from the environment once.

Only lowercase Celery setting names live here (Celery's "new" setting names);
the worker's ASR settings are in ``worker/settings.py``. ``REDIS_URL`` sets the
broker and the result backend together; ``CELERY_BROKER_URL`` and
``CELERY_RESULT_BACKEND`` override each.
"""

from __future__ import annotations

import os


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a number") from None
    if value < 0:
        raise SystemExit(f"{name}={raw!r} must not be negative")
    return value


_redis_url = os.environ.get("REDIS_URL", "").strip() or "redis://localhost:6379/0"

broker_url = os.environ.get("CELERY_BROKER_URL", "").strip() or _redis_url
result_backend = os.environ.get("CELERY_RESULT_BACKEND", "").strip() or _redis_url

# JSON everywhere: a pickled message could run code in the worker.
task_serializer = "json"
result_serializer = "json"
event_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

# Producers and workers meet on this queue unless a job names another.
task_default_queue = os.environ.get("ASR_QUEUE", "").strip() or "asr"

# Loading and warming a model takes longer than Celery's 4 s default for a
# child's init handler; a child still loading then would be killed and forked again.
worker_proc_alive_timeout = _env_number("CELERY_WORKER_PROC_ALIVE_TIMEOUT", 300.0)

# One job at a time per child: a transcription is long, and a prefetched job
# would wait behind it while another child sits idle.
worker_prefetch_multiplier = 1

# Ack after the job ends, and give a job back when its child dies, so a crash
# does not lose it (Celery's docs: "acks_late" and task_reject_on_worker_lost).
task_acks_late = True
task_reject_on_worker_lost = True

# States and events for Flower and for the producer's progress bars.
task_track_started = True
worker_send_task_events = True
task_send_sent_event = True
result_extended = True

# Keep retrying the broker at start instead of exiting (Celery >= 5.3 warns otherwise).
broker_connection_retry_on_startup = True

# How long results stay in Redis (seconds); 0 keeps them until deleted.
result_expires = int(_env_number("ASR_RESULT_EXPIRES", 7 * 24 * 3600.0)) or None
