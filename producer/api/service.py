"""What every route shares: the producer client, an async Redis for watching jobs, and uploads.

Jobs are enqueued with :class:`producer.Client` (in a worker thread: it is
synchronous). Waiting is not polling: Celery's Redis result backend publishes
every state it stores (``PROGRESS`` included) on the channel named after the
job's key, so a watcher subscribes there and wakes when the worker writes,
re-reading the key on a quiet second in case a message was missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
import redis.asyncio
import redis.asyncio.sentinel

from asr_protocol.sentinel import is_sentinel
from producer.api.metrics import Metrics
from producer.api.models import ModelDirectory
from producer.api.settings import ApiSettings
from producer.api.storage import remove_upload
from producer.client import ENDED_STATES, BrokerUnavailableError, Client, Job
from producer.config import ProducerSettings, parse_sentinel_url

__all__ = ["UPLOADS_KEY", "Service", "async_redis"]

log = logging.getLogger(__name__)

#: Redis hash job id -> upload (path or s3:// URL), so a restarted API still removes the uploads of its jobs.
UPLOADS_KEY = "asr:api:uploads"
#: A quiet watcher re-reads the job's state this often (seconds).
POLL_SECONDS = 1.0


def async_redis(url: str, settings: ProducerSettings | None = None) -> redis.asyncio.Redis:
    """An asyncio client of the Redis at ``url``; for ``sentinel://`` URLs, of the master the Sentinels name.

    The Sentinel client asks the Sentinels for the master on each new connection, so it follows a failover.
    """
    if not is_sentinel(url):
        return redis.asyncio.Redis.from_url(url)
    parsed = parse_sentinel_url(url, settings)
    sentinel = redis.asyncio.sentinel.Sentinel(
        parsed.sentinels,
        sentinel_kwargs=parsed.sentinel_kwargs,
        db=parsed.db,
        username=parsed.username,
        password=parsed.password,
    )
    return sentinel.master_for(parsed.master_name)


class Service:
    """One per API process; created at start-up, closed at shutdown."""

    def __init__(self, settings: ApiSettings, client: Client | None = None) -> None:
        self.settings = settings
        self.client = client or Client()
        self.redis = async_redis(self.client.backend_url, self.client.settings)
        self.models = ModelDirectory(self.client)
        self.metrics = Metrics()
        self._send_lock = threading.Lock()
        self._reapers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Check the broker, then resume removing the uploads of jobs still running.

        Raises:
            BrokerUnavailableError: Redis cannot be reached.
        """
        await anyio.to_thread.run_sync(self.client.check_connection)
        for job_id, location in (await self.redis.hgetall(UPLOADS_KEY)).items():
            self._reap_later(_text(job_id), _text(location), resumed=True)

    async def close(self) -> None:
        for task in list(self._reapers):
            task.cancel()
        await asyncio.gather(*self._reapers, return_exceptions=True)
        await self.redis.aclose()
        self.client.close()

    async def submit(self, audio: str, *, queue: str, batch: bool = False, **options: Any) -> Job:
        """Enqueue one job through the producer library.

        Raises:
            BrokerUnavailableError: the broker cannot be reached.
        """

        def send() -> Job:
            # One publisher at a time: kombu's Redis channel is not meant to be shared by threads.
            with self._send_lock:
                return self.client.submit(audio, queue=queue, batch=batch, **options)

        return await anyio.to_thread.run_sync(send)

    async def watch(self, job_id: str, *, poll: float = POLL_SECONDS) -> AsyncIterator[dict[str, Any]]:
        """Yield the job's stored meta (``status``, ``result``) each time it changes, until it ends.

        A job no worker has taken yet has no stored meta: it is yielded once as ``PENDING``.
        """
        key = self.client.app.backend.get_key_for_task(job_id)
        last: dict[str, Any] | None = None
        try:
            async with self.redis.pubsub() as pubsub:
                await pubsub.subscribe(key)
                meta = _decode(await self.redis.get(key))
                while True:
                    if meta != last:
                        yield meta
                        last = meta
                    if meta["status"] in ENDED_STATES:
                        return
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=poll)
                    meta = _decode(message["data"] if message else await self.redis.get(key))
        except redis.RedisError as exc:
            raise BrokerUnavailableError(f"lost the result backend: {type(exc).__name__}") from None

    async def meta(self, job_id: str) -> dict[str, Any]:
        """The job's stored meta now (``PENDING`` when nothing is stored)."""
        return _decode(await self.redis.get(self.client.app.backend.get_key_for_task(job_id)))

    async def wait(self, job_id: str, timeout: float) -> dict[str, Any]:
        """The job's final meta, or the last one seen when ``timeout`` passes first."""
        last: dict[str, Any] = {"status": "PENDING", "result": None}
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                async for meta in self.watch(job_id):
                    last = meta
        return last

    async def track_upload(self, job_id: str, location: str) -> None:
        """Remember the job's upload in Redis until it is removed, so a restarted API still removes it."""
        if not self.settings.keep_uploads:
            await self.redis.hset(UPLOADS_KEY, job_id, location)

    async def release_upload(self, job_id: str, location: str) -> None:
        """Remove the upload (file or S3 object) of a job that has ended (kept with ``ASR_API_KEEP_UPLOADS``).

        One that cannot be removed now (the object store unreachable) stays recorded:
        the next start of the API tries again.
        """
        if self.settings.keep_uploads:
            return
        try:
            await anyio.to_thread.run_sync(remove_upload, location)
        except Exception as exc:
            log.warning("could not remove the upload of job %s: %s", job_id, exc)
            return
        await self.redis.hdel(UPLOADS_KEY, job_id)
        log.debug("removed the upload of job %s", job_id)

    def release_when_done(self, job_id: str, location: str) -> None:
        """Remove the upload once the job ends, from a background task."""
        if not self.settings.keep_uploads:
            self._reap_later(job_id, location)

    def _reap_later(self, job_id: str, location: str, *, resumed: bool = False) -> None:
        task = asyncio.get_running_loop().create_task(self._reap(job_id, location, resumed))
        self._reapers.add(task)
        task.add_done_callback(self._reapers.discard)

    async def _reap(self, job_id: str, location: str, resumed: bool) -> None:
        if resumed and (await self.meta(job_id))["status"] == "PENDING":
            # Left by an earlier run: a job nobody knows any more (its result expired, or
            # it was purged) would be waited for forever.
            status = await anyio.to_thread.run_sync(lambda: self.client.status(job_id))
            if not status.known:
                await self.release_upload(job_id, location)
                return
        meta: dict[str, Any] = {}
        while True:
            try:
                async for update in self.watch(job_id):
                    meta = update
                break
            except BrokerUnavailableError:
                await asyncio.sleep(5 * POLL_SECONDS)
        await self.release_upload(job_id, location)
        # No request saw this job end (jobs-API uploads, waits that timed out): count it here.
        self.count_end(meta)

    def count_end(self, meta: dict[str, Any]) -> None:
        """Count an ended job in ``asr_api_jobs_ended_total`` (and its audio, when it succeeded)."""
        state, result = meta.get("status"), meta.get("result")
        if state == "SUCCESS" and isinstance(result, dict):
            self.metrics.ended.labels("SUCCESS", "").inc()
            self.metrics.audio_seconds.inc(float(result.get("duration") or 0.0))
        elif state in ("FAILURE", "REVOKED"):
            error_type = result.get("exc_type", "") if isinstance(result, dict) else ""
            self.metrics.ended.labels(state, str(error_type)).inc()


def _decode(raw: bytes | str | None) -> dict[str, Any]:
    if raw is None:
        return {"status": "PENDING", "result": None}
    meta: dict[str, Any] = json.loads(raw)
    return meta


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
