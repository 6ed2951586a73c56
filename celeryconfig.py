"""Celery settings for the transcription worker, computed from its one :class:`Settings`.

Only lowercase Celery setting names live here (Celery's "new" setting names); the
environment is read once, into ``worker.pipeline.settings.Settings``, which names every
variable and its default. ``REDIS_URL`` sets the broker and the result backend together;
``CELERY_BROKER_URL`` and ``CELERY_RESULT_BACKEND`` override each. With an ``amqp://``
broker (RabbitMQ) the job queues are quorum queues and every publish waits for the
broker's confirm (docs/deploy.md "RabbitMQ as the broker"); results stay in Redis.
"""

from __future__ import annotations

from asr_protocol.queues import is_amqp, job_queue, queue_settings
from asr_protocol.sentinel import sentinel_options
from worker.pipeline.errors import ConfigError
from worker.pipeline.settings import get_settings

try:
    _settings = get_settings()
except ConfigError as exc:
    # The one line the operator sees, as for every other setting the worker refuses.
    raise SystemExit(f"worker cannot start: {type(exc).__name__}: {exc}") from None

broker_url = _settings.broker_url
result_backend = _settings.result_backend

# JSON everywhere: a pickled message could run code in the worker.
task_serializer = "json"
result_serializer = "json"
event_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

# Producers and workers meet on this queue unless a job names another.
task_default_queue = _settings.queue
# A worker started without -Q reads these: its own queue and Celery's default one,
# where a bare Celery client that names no queue sends its task (else it would wait forever).
# On RabbitMQ each is a quorum queue (asr_protocol.queues), with a dead-letter queue for
# jobs past ASR_MAX_DELIVERIES and a consumer timeout longer than the hard time limit.
broker_is_amqp = is_amqp(broker_url)

# Loading and warming a model takes longer than Celery's 4 s default for a
# child's init handler; a child still loading then would be killed and forked again.
worker_proc_alive_timeout = _settings.proc_alive_timeout

# One job at a time per child: a transcription is long, and a prefetched job
# would wait behind it while another child sits idle. A worker that batches clip
# jobs (asr.transcribe_clip) holds a batch's messages unacknowledged while it
# gathers and decodes them: give it a queue of its own and a multiplier of at
# least ASR_CLIP_BATCH (README "Cross-job batching").
worker_prefetch_multiplier = _settings.prefetch_multiplier

# Ack after the job ends, and give a job back when its child dies, so a crash
# does not lose it: without task_reject_on_worker_lost a killed child's job is
# acked and gone even with acks_late (Celery tasks.rst; celery/celery#1628, #5106, #7924).
task_acks_late = True
task_reject_on_worker_lost = True

# A job may run this long: the soft limit raises inside the job (it fails with
# TranscriptionTimeoutError), the hard limit replaces the child.
task_soft_time_limit = _settings.soft_time_limit or None
task_time_limit = _settings.hard_time_limit or None

# RabbitMQ closes the channel of a consumer that holds a delivery unacknowledged longer
# than the queue's consumer timeout (30 min by default), and this worker acks after the job.
task_queues = [
    job_queue(
        name,
        amqp=broker_is_amqp,
        **queue_settings(max_deliveries=_settings.max_deliveries, hard_time_limit=_settings.hard_time_limit),
    )
    for name in dict.fromkeys([task_default_queue, "celery"])
]

# Redis redelivers an unacked job after the visibility timeout; a job running
# longer than it would run twice (#5935), so it must outlast the hard limit, and
# Celery's Redis docs ask for the same value in all three places (Settings checks it).
visibility_timeout = _settings.visibility_timeout
# The visibility timeout is the Redis transport's; RabbitMQ redelivers a lost consumer's
# deliveries at once. There, each publish waits for the broker's confirm instead: a job
# is confirmed only once a majority of a quorum queue's replicas hold it.
broker_transport_options: dict[str, object] = (
    {"confirm_publish": True} if broker_is_amqp else {"visibility_timeout": visibility_timeout}
)
result_backend_transport_options: dict[str, object] = {"visibility_timeout": visibility_timeout}

# Retries with a countdown (webhooks, transient errors) on RabbitMQ: Celery's native
# delayed delivery needs topic exchanges, and these queues keep Celery's direct ones (so a
# plain Celery client publishes to them as before); such a retry waits in the worker, as
# on Redis. The delay queues Celery still declares stay empty: classic ones cost least.
broker_native_delayed_delivery_queue_type = "classic"

# Redis Sentinel: sentinel://host:26379;sentinel://host2:26379;... URLs, as Celery documents;
# REDIS_SENTINEL_MASTER names the master (default mymaster), REDIS_SENTINEL_PASSWORD the
# Sentinels' own password. docs/reliability.md says what a failover can and cannot keep.
broker_transport_options.update(
    sentinel_options(broker_url, _settings.sentinel_master, _settings.sentinel_password)
)
result_backend_transport_options.update(
    sentinel_options(result_backend, _settings.sentinel_master, _settings.sentinel_password)
)

# When the broker connection drops, running acks_late jobs cannot be acked any
# more and will be redelivered: cancel them instead of finishing twice.
worker_cancel_long_running_tasks_on_connection_loss = True

# Preemption notice (ASR_SHUTDOWN_GRACE seconds, 0 = off): on SIGTERM the worker stops
# taking jobs, lets running ones go on this long, then stops their children and hands
# their unacknowledged messages back to the queue (Celery 5.5's soft shutdown, which
# worker/runtime/preemption.py starts on SIGTERM). 0 keeps the warm shutdown: jobs finish.
worker_soft_shutdown_timeout = _settings.shutdown_grace

# A redelivered job whose result is already SUCCESS is not transcribed again.
worker_deduplicate_successful_tasks = True

# Keep storing results through short Redis outages instead of losing them: a write that
# meets a dead master is tried again (up to 30 times, backing off to 10 s) and, through
# Sentinel, lands on the promoted one.
result_backend_always_retry = True
result_backend_max_retries = 30

# A retry (self.retry) or a chord part published while Redis restarts or fails over is
# published again for up to about two minutes, not the default 0.6 s, so it is not lost.
task_publish_retry_policy = {"max_retries": 30, "interval_start": 0, "interval_step": 1, "interval_max": 5}

# Recycle children: after N jobs, or when a child's RSS passes N KiB (0 = never).
worker_max_tasks_per_child = _settings.max_tasks_per_child or None
worker_max_memory_per_child = _settings.max_memory_per_child or None

# States and events for Flower and for the producer's progress bars.
task_track_started = True
worker_send_task_events = True
task_send_sent_event = True
result_extended = True

# Keep retrying the broker at start instead of exiting (Celery >= 5.3 warns otherwise).
broker_connection_retry_on_startup = True

# How long results stay in Redis (seconds); 0 keeps them until deleted.
result_expires = _settings.result_expires or None
