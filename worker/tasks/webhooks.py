"""Completion webhooks: POST a job's outcome to its ``callback_url``, signed, with retries.

When an ``asr.transcribe`` job that names a ``callback_url`` ends, with success
or failure, the child queues a separate task, ``asr.deliver_webhook``. The
hook is Celery's ``task_success``/``task_failure`` signals: they fire in the
child *after* the outcome is stored, for every way the task body can end
(bad input included), and a retry (``TransientError``) is not an end. A
cancelled job (``task_revoked``, sent by the worker's main process when it
kills the job or drops it from the queue) is reported as ``REVOKED``.

The delivery task carries the job's id, not its transcript: it reads the
stored result from the backend, so a long transcript is not copied into the
queue. It goes to the job's own queue (``ASR_WEBHOOK_QUEUE`` names another);
waiting between attempts is a ``self.retry(countdown=...)``, which frees the
child, so a slow or dead receiver never holds a transcription slot for more
than one ``ASR_WEBHOOK_TIMEOUT``. Delivery is at least once: receivers
deduplicate by ``task_id``. Nothing here can change the job's own result.

Signature: ``X-ASR-Signature: sha256=<hex HMAC-SHA256(ASR_WEBHOOK_SECRET,
f"{timestamp}.{body}")>`` with ``X-ASR-Timestamp: <timestamp>`` (unix seconds of
the attempt). The timestamp is signed so a receiver can reject replays of an
old request; see docs/results.md for the receiver's side.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from celery import Task

from asr_protocol.names import CLIP_TASK_NAME, MERGE_TASK_NAME, WEBHOOK_TASK_NAME
from asr_protocol.names import TASK_NAME as JOB_TASK_NAME
from worker.celery import app
from worker.pipeline.errors import InvalidOptionsError, WebhookDeliveryError
from worker.pipeline.options import check_callback_url
from worker.pipeline.settings import get_settings

__all__ = [
    "TASK_NAME",
    "backoff",
    "deliver_webhook",
    "encode_payload",
    "on_task_failure",
    "on_task_revoked",
    "on_task_success",
    "queue_delivery",
    "queue_revoked",
    "retryable",
    "sign",
]

log = logging.getLogger(__name__)

TASK_NAME = WEBHOOK_TASK_NAME
#: The tasks whose end is a job's end: a job split across the fleet ends with its merge.
JOB_TASKS = frozenset({JOB_TASK_NAME, MERGE_TASK_NAME})
#: A clip job dropped while its batch gathers is revoked as itself
#: (its outcomes are sent by worker.tasks.clips).
REVOCABLE_TASKS = JOB_TASKS | {CLIP_TASK_NAME}
USER_AGENT = "asr-worker-webhook/1"
#: Longest wait between two attempts, whatever the backoff doubling reaches.
MAX_BACKOFF = 600.0


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-ASR-Signature`` value: ``sha256=`` + hex HMAC-SHA256 of ``b"<timestamp>." + body``."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def encode_payload(payload: Mapping[str, Any]) -> bytes:
    """The request body: compact UTF-8 JSON (receivers verify these exact bytes)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def backoff(attempt: int, base: float) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): base, 2 x base, 4 x base, ..."""
    return min(MAX_BACKOFF, base * 2 ** (attempt - 1))


def retryable(status: int | None) -> bool:
    """Whether a failed attempt is worth another: no answer at all (``None``) or a 5xx.

    A 4xx (and a 3xx: redirects are not followed) says the request itself is
    wrong; sending it again cannot help.
    """
    return status is None or status >= 500


def _safe_url(url: str) -> str:
    # The query string may hold a receiver's token: keep it out of the logs.
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect could lead to a host outside ASR_WEBHOOK_ALLOWED_HOSTS: never follow one."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def _post(url: str, body: bytes, secret: str, timeout: float) -> int:
    timestamp = int(time.time())
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "X-ASR-Timestamp": str(timestamp),
            "X-ASR-Signature": sign(secret, timestamp, body),
        },
    )
    with _opener.open(request, timeout=timeout) as response:
        response.read(65536)  # let the receiver finish its answer; its body is not used
        return int(response.status)


def _payload(task: Task, task_id: str, state: str, error: dict[str, str] | None, ended: float) -> bytes:
    result = None
    if state == "SUCCESS":
        meta = task.backend.get_task_meta(task_id, cache=False)
        if meta.get("status") == "SUCCESS":
            result = meta.get("result")
        else:
            log.warning("webhook for job %s: its result is no longer stored (expired?)", task_id)
    return encode_payload(
        {"task_id": task_id, "state": state, "result": result, "error": error, "timestamp": ended}
    )


@app.task(name=TASK_NAME, bind=True, ignore_result=True, throws=(WebhookDeliveryError,))
def deliver_webhook(
    self: Task, task_id: str, url: str, state: str, error: dict[str, str] | None, ended: float
) -> None:
    """POST the outcome of job ``task_id`` to ``url``; retry with backoff on 5xx and no answer.

    Raises:
        WebhookDeliveryError: the receiver refused it (4xx) or the last attempt failed.
    """
    settings = get_settings()
    attempt = self.request.retries + 1
    where = _safe_url(url)
    body = _payload(self, task_id, state, error, ended)
    status: int | None = None
    try:
        status = _post(url, body, settings.webhook_secret, settings.webhook_timeout)
    except urllib.error.HTTPError as exc:
        status, reason = exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
    else:
        log.info("webhook for job %s delivered to %s (HTTP %d, attempt %d)", task_id, where, status, attempt)
        return
    if not retryable(status):
        log.error("webhook for job %s: %s refused it (%s); not retried", task_id, where, reason)
        raise WebhookDeliveryError(f"{where} answered {reason}")
    if attempt >= settings.webhook_max_attempts:
        log.error(
            "webhook for job %s to %s gave up after %d attempts (ASR_WEBHOOK_MAX_ATTEMPTS); last: %s",
            task_id,
            where,
            attempt,
            reason,
        )
        raise WebhookDeliveryError(f"{where}: {attempt} attempts failed; last: {reason}")
    countdown = backoff(attempt, settings.webhook_backoff_seconds)
    log.warning(
        "webhook for job %s to %s: attempt %d of %d failed (%s); next in %.1f s",
        task_id,
        where,
        attempt,
        settings.webhook_max_attempts,
        reason,
        countdown,
    )
    # retry() re-queues the message with an ETA and frees this child meanwhile.
    raise self.retry(countdown=countdown, max_retries=settings.webhook_max_attempts - 1)


def queue_delivery(
    task_id: str | None, kwargs: Mapping[str, Any] | None, delivery_info: Any, state: str, error: Any
) -> None:
    raw = (kwargs or {}).get("callback_url")
    if raw is None or not task_id:
        return
    settings = get_settings()
    try:
        url = check_callback_url(raw, settings.webhook_allowed_hosts)
    except InvalidOptionsError:
        return  # the job failed for this very reason: there is no allowed place to post to
    queue = settings.webhook_queue or (delivery_info or {}).get("routing_key") or None
    try:
        deliver_webhook.apply_async((task_id, url, state, error, round(time.time(), 3)), queue=queue)
    except Exception:
        log.exception("could not queue the webhook of job %s to %s", task_id, _safe_url(url))


def queue_revoked(
    task_id: str | None, kwargs: Mapping[str, Any] | None, delivery_info: Any, reason: str
) -> None:
    """Queue the ``REVOKED`` webhook of a cancelled job, saying why it ended."""
    error = {"type": "TaskRevokedError", "message": reason}
    queue_delivery(task_id, kwargs, delivery_info, "REVOKED", error)


def on_task_success(sender: Any = None, **_: Any) -> None:
    if getattr(sender, "name", None) in JOB_TASKS:
        request = sender.request
        queue_delivery(request.id, request.kwargs, request.delivery_info, "SUCCESS", None)


def on_task_revoked(
    sender: Any = None, request: Any = None, terminated: bool = False, expired: bool = False, **_: Any
) -> None:
    if getattr(sender, "name", None) in REVOCABLE_TASKS and request is not None:
        reason = "expired" if expired else "terminated" if terminated else "revoked"
        queue_revoked(request.id, request.kwargs, request.delivery_info, reason)


def on_task_failure(
    sender: Any = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    kwargs: Mapping[str, Any] | None = None,
    **_: Any,
) -> None:
    if getattr(sender, "name", None) in JOB_TASKS:
        error = {"type": type(exception).__name__, "message": str(exception)}
        delivery_info = getattr(sender.request, "delivery_info", None)
        queue_delivery(task_id, kwargs, delivery_info, "FAILURE", error)
