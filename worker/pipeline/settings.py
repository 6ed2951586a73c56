"""The worker's settings, read from the environment once.

What the model loader and the tasks need, and what ``celeryconfig.py`` turns into
Celery's lowercase settings. A bad value raises :class:`ConfigError` with the
variable's name, so a worker with a typo stops at start instead of failing every job.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asr_protocol.names import DEFAULT_QUEUE
from asr_protocol.sentinel import DEFAULT_SENTINEL_MASTER
from worker.pipeline.env import MIN_PIECE_SECONDS, EnvReader
from worker.pipeline.errors import ConfigError

__all__ = ["COMPUTE_TYPES", "DEVICES", "MIN_PIECE_SECONDS", "Settings", "get_settings"]

DEFAULT_REDIS_URL = "redis://localhost:6379/0"

DEVICES = ("auto", "cpu", "cuda")
# CTranslate2's quantisation types (docs: quantization.html), plus "auto".
COMPUTE_TYPES = (
    "auto",
    "int8",
    "int8_float32",
    "int8_float16",
    "int8_bfloat16",
    "int16",
    "float16",
    "bfloat16",
    "float32",
)


def _default_spool_dir() -> Path:
    import tempfile

    return Path(tempfile.gettempdir()) / "asr-spool"


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "asr-worker" / "models"


@dataclass(frozen=True)
class Settings:
    """Everything the ASR side of a worker reads from its environment."""

    #: ENABLE_FASTER_WHISPER: false makes the worker refuse ASR tasks.
    enable_faster_whisper: bool = True
    #: ASR_MODEL_ID: a size name, ``openai/whisper-<size>``, a Hub id or a local directory.
    model_id: str = "tiny.en"
    #: ASR_DEVICE: ``auto`` uses CUDA when a GPU is usable, else the CPU.
    device: str = "auto"
    #: ASR_DEVICE_INDEX: the GPU a child uses; empty spreads the children over all GPUs.
    device_index: int | None = None
    #: ASR_COMPUTE_TYPE: ``auto`` is float16 on a GPU and int8 on the CPU.
    compute_type: str = "auto"
    #: ASR_BEAM_SIZE: the default beam size of a job that names none.
    beam_size: int = 5
    #: ASR_BATCH_SIZE: 30 s windows decoded at once for audio over 30 s; 1 keeps the sequential decoder.
    batch_size: int = 8
    #: ASR_CACHE_DIR: where downloaded (and assembled bundled) models are kept.
    cache_dir: Path = Path()
    #: ASR_CPU_THREADS: threads per child; 0 divides the machine's cores among the children.
    cpu_threads: int = 0
    #: ASR_MAX_AUDIO_SECONDS: longer audio is refused; 0 means no limit.
    max_audio_seconds: float = 4 * 3600.0
    #: ASR_MAX_FILE_BYTES: larger files are refused; 0 means no limit.
    max_file_bytes: int = 2 * 1024**3
    #: ASR_AUDIO_ROOTS: colon-separated directories jobs may read from; empty allows any path.
    audio_roots: tuple[Path, ...] = ()
    #: ASR_CHUNK_SECONDS: longer audio is transcribed in pieces cut in pauses, bounding memory; 0 = whole.
    chunk_seconds: float = 600.0
    #: ASR_FANOUT_SECONDS: longer audio is split in pauses into pieces of at most this long,
    #: transcribed across the fleet as a Celery chord; 0 keeps every file in one child.
    fanout_seconds: float = 300.0
    #: ASR_CLIP_BATCH: most clip jobs (``asr.transcribe_clip``) a child decodes as one batch.
    clip_batch: int = 8
    #: ASR_CLIP_WAIT: seconds a worker waits for more clip jobs before it decodes fewer.
    clip_wait: float = 0.1
    #: ASR_MAX_DELIVERIES: a job whose child died this many times fails instead of running again.
    max_deliveries: int = 3
    #: ASR_TIMEOUT_BASE: seconds every job may take, on top of the per-audio-second allowance.
    timeout_base: float = 300.0
    #: ASR_TIMEOUT_PER_AUDIO_SECOND: seconds allowed per second of audio; 0 disables this deadline.
    timeout_per_audio_second: float = 2.0
    #: ASR_WEBHOOK_ALLOWED_HOSTS: comma-separated ``host`` or ``host:port`` a callback_url may name;
    #: empty refuses webhooks.
    webhook_allowed_hosts: tuple[str, ...] = ()
    #: ASR_WEBHOOK_SECRET: the HMAC-SHA256 key that signs webhooks (kept out of repr and logs).
    webhook_secret: str = field(default="", repr=False)
    #: ASR_WEBHOOK_MAX_ATTEMPTS: deliveries tried per webhook before giving up.
    webhook_max_attempts: int = 5
    #: ASR_WEBHOOK_BACKOFF_SECONDS: wait before the first retry; doubled for each later one.
    webhook_backoff_seconds: float = 2.0
    #: ASR_WEBHOOK_TIMEOUT: seconds one delivery may take (connect plus answer).
    webhook_timeout: float = 10.0
    #: ASR_WEBHOOK_QUEUE: queue of the delivery tasks; empty uses the job's own queue.
    webhook_queue: str = ""
    #: ASR_NODE_LOSS_SECONDS: a worker silent this long is lost; its unacked jobs go back on the queue.
    node_loss_seconds: float = 90.0
    #: ASR_TAKE_POLL_SECONDS: on a Redis broker jobs are taken with one atomic script
    #: (worker.runtime.take); an idle worker looks at its empty queues again this often.
    #: 0 takes with kombu's BRPOP (a node killed while it takes a job can lose it).
    take_poll_seconds: float = 0.1
    #: ASR_AUDIO_URLS: comma-separated URL prefixes (``s3://bucket/``, ``https://host/``) jobs may
    #: read; empty refuses URLs (docs/sources.md).
    audio_urls: tuple[str, ...] = ()
    #: ASR_SPOOL_DIR: where URL audio is downloaded while its jobs run (one copy per node).
    spool_dir: Path = Path()
    #: ASR_FETCH_CONNECT_TIMEOUT: seconds to connect to an object store or web server.
    fetch_connect_timeout: float = 10.0
    #: ASR_FETCH_READ_TIMEOUT: seconds a download may wait for its next bytes.
    fetch_read_timeout: float = 60.0
    #: ASR_FETCH_RETRIES: retries, with backoff, of a download that met a 5xx or a connection error.
    fetch_retries: int = 3
    #: ASR_OUTPUT_URL: where every finished transcript is written (``s3://`` prefix or directory).
    output_url: str = ""
    #: ASR_OUTPUT_URLS: comma-separated other prefixes a job's ``output_url`` option may name.
    output_urls: tuple[str, ...] = ()
    #: AWS_REGION (else AWS_DEFAULT_REGION): the S3 region; boto3 reads credentials and AWS_ENDPOINT_URL.
    aws_region: str = ""
    #: ASR_DIARIZATION: load the speaker encoder (requirements-diarization.txt) and serve diarize=true.
    diarization: bool = False

    # Celery's settings (celeryconfig.py); times in seconds.
    #: CELERY_BROKER_URL, else REDIS_URL, else Redis on localhost.
    broker_url: str = DEFAULT_REDIS_URL
    #: CELERY_RESULT_BACKEND, else REDIS_URL, else Redis on localhost.
    result_backend: str = DEFAULT_REDIS_URL
    #: ASR_QUEUE: the queue producers and workers meet on unless a job names another.
    queue: str = DEFAULT_QUEUE
    #: ASR_SOFT_TIME_LIMIT: a job running this long fails with TranscriptionTimeoutError; 0 = none.
    soft_time_limit: float = 6 * 3600.0
    #: ASR_HARD_TIME_LIMIT: a job running this long has its child replaced; 0 = none.
    hard_time_limit: float = 6 * 3600.0 + 600
    #: ASR_VISIBILITY_TIMEOUT: Redis redelivers a job unacknowledged this long; longer than the hard limit.
    visibility_timeout: int = 7 * 3600
    #: REDIS_SENTINEL_MASTER: the master the Sentinels of a ``sentinel://`` URL watch.
    sentinel_master: str = DEFAULT_SENTINEL_MASTER
    #: REDIS_SENTINEL_PASSWORD: the Sentinels' own password (kept out of repr and logs).
    sentinel_password: str = field(default="", repr=False)
    #: ASR_SHUTDOWN_GRACE: on SIGTERM, running jobs go on this long before they are handed back; 0 = off.
    shutdown_grace: float = 0.0
    #: ASR_RESULT_EXPIRES: how long results stay in Redis; 0 keeps them until deleted.
    result_expires: int = 7 * 24 * 3600
    #: CELERY_WORKER_PROC_ALIVE_TIMEOUT: how long a child may take to load and warm its model.
    proc_alive_timeout: float = 300.0
    #: CELERY_WORKER_PREFETCH_MULTIPLIER: messages a child reserves (0 means 1).
    prefetch_multiplier: int = 1
    #: CELERY_WORKER_MAX_TASKS_PER_CHILD: a child is replaced after this many jobs; 0 = never.
    max_tasks_per_child: int = 0
    #: CELERY_WORKER_MAX_MEMORY_PER_CHILD: a child is replaced past this RSS in KiB; 0 = never.
    max_memory_per_child: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``env`` (default ``os.environ``).

        Raises:
            ConfigError: a variable has a value that cannot be used; the message names it.
        """
        env = os.environ if env is None else env
        reader = EnvReader(env)
        redis_url = reader.text("REDIS_URL", DEFAULT_REDIS_URL)
        hard = reader.number("ASR_HARD_TIME_LIMIT", 6 * 3600.0 + 600, minimum=0)
        visibility = int(reader.number("ASR_VISIBILITY_TIMEOUT", 7 * 3600.0, minimum=0))
        # Redis would hand a still-running job to a second worker (celery/celery#5935).
        if hard and visibility <= hard:
            raise ConfigError(
                f"ASR_VISIBILITY_TIMEOUT={visibility} must be longer than ASR_HARD_TIME_LIMIT={hard:g}"
            )
        return cls(
            enable_faster_whisper=reader.boolean("ENABLE_FASTER_WHISPER", True),
            model_id=reader.text("ASR_MODEL_ID", "tiny.en"),
            device=reader.choice("ASR_DEVICE", "auto", DEVICES),
            device_index=reader.optional_int("ASR_DEVICE_INDEX", minimum=0),
            compute_type=reader.choice("ASR_COMPUTE_TYPE", "auto", COMPUTE_TYPES),
            beam_size=reader.integer("ASR_BEAM_SIZE", 5, minimum=1),
            batch_size=reader.integer("ASR_BATCH_SIZE", 8, minimum=1),
            cache_dir=Path(reader.text("ASR_CACHE_DIR", str(_default_cache_dir()))).expanduser(),
            cpu_threads=reader.integer("ASR_CPU_THREADS", 0, minimum=0),
            max_audio_seconds=reader.number("ASR_MAX_AUDIO_SECONDS", 4 * 3600.0, minimum=0),
            max_file_bytes=reader.integer("ASR_MAX_FILE_BYTES", 2 * 1024**3, minimum=0),
            audio_roots=reader.paths("ASR_AUDIO_ROOTS"),
            chunk_seconds=reader.number("ASR_CHUNK_SECONDS", 600.0, minimum=0),
            fanout_seconds=reader.piece_length("ASR_FANOUT_SECONDS", 300.0),
            clip_batch=reader.integer("ASR_CLIP_BATCH", 8, minimum=1),
            clip_wait=reader.number("ASR_CLIP_WAIT", 0.1, minimum=0.01),
            max_deliveries=reader.integer("ASR_MAX_DELIVERIES", 3, minimum=1),
            timeout_base=reader.number("ASR_TIMEOUT_BASE", 300.0, minimum=0),
            timeout_per_audio_second=reader.number("ASR_TIMEOUT_PER_AUDIO_SECOND", 2.0, minimum=0),
            webhook_allowed_hosts=reader.hosts("ASR_WEBHOOK_ALLOWED_HOSTS"),
            webhook_secret=reader.secret("ASR_WEBHOOK_SECRET", required_by="ASR_WEBHOOK_ALLOWED_HOSTS"),
            webhook_max_attempts=reader.integer("ASR_WEBHOOK_MAX_ATTEMPTS", 5, minimum=1),
            webhook_backoff_seconds=reader.number("ASR_WEBHOOK_BACKOFF_SECONDS", 2.0, minimum=0),
            webhook_timeout=reader.number("ASR_WEBHOOK_TIMEOUT", 10.0, minimum=0.1),
            webhook_queue=reader.text("ASR_WEBHOOK_QUEUE", ""),
            node_loss_seconds=reader.number("ASR_NODE_LOSS_SECONDS", 90.0, minimum=2),
            take_poll_seconds=reader.number("ASR_TAKE_POLL_SECONDS", 0.1, minimum=0),
            audio_urls=reader.url_prefixes("ASR_AUDIO_URLS"),
            spool_dir=Path(reader.text("ASR_SPOOL_DIR", str(_default_spool_dir()))).expanduser(),
            fetch_connect_timeout=reader.number("ASR_FETCH_CONNECT_TIMEOUT", 10.0, minimum=0.1),
            fetch_read_timeout=reader.number("ASR_FETCH_READ_TIMEOUT", 60.0, minimum=0.1),
            fetch_retries=reader.integer("ASR_FETCH_RETRIES", 3, minimum=0),
            output_url=reader.output_prefix("ASR_OUTPUT_URL"),
            output_urls=tuple(
                reader.output_prefix("ASR_OUTPUT_URLS", part)
                for part in reader.text("ASR_OUTPUT_URLS", "").split(",")
                if part.strip()
            ),
            aws_region=reader.text("AWS_REGION", reader.text("AWS_DEFAULT_REGION", "")),
            diarization=reader.boolean("ASR_DIARIZATION", False),
            broker_url=reader.text("CELERY_BROKER_URL", redis_url),
            result_backend=reader.text("CELERY_RESULT_BACKEND", redis_url),
            queue=reader.text("ASR_QUEUE", DEFAULT_QUEUE),
            soft_time_limit=reader.number("ASR_SOFT_TIME_LIMIT", 6 * 3600.0, minimum=0),
            hard_time_limit=hard,
            visibility_timeout=visibility,
            sentinel_master=reader.text("REDIS_SENTINEL_MASTER", DEFAULT_SENTINEL_MASTER),
            sentinel_password=reader.text("REDIS_SENTINEL_PASSWORD", ""),
            shutdown_grace=reader.number("ASR_SHUTDOWN_GRACE", 0.0, minimum=0),
            result_expires=reader.whole("ASR_RESULT_EXPIRES", 7 * 24 * 3600),
            proc_alive_timeout=reader.number("CELERY_WORKER_PROC_ALIVE_TIMEOUT", 300.0, minimum=0),
            prefetch_multiplier=reader.whole("CELERY_WORKER_PREFETCH_MULTIPLIER", 1) or 1,
            max_tasks_per_child=reader.whole("CELERY_WORKER_MAX_TASKS_PER_CHILD", 0),
            max_memory_per_child=reader.whole("CELERY_WORKER_MAX_MEMORY_PER_CHILD", 0),
        )

    def decoding(self) -> dict[str, Any]:
        """The keyword arguments of ``transcribe_array`` that come from these settings."""
        return {
            "default_beam_size": self.beam_size,
            "chunk_seconds": self.chunk_seconds,
            "batch_size": self.batch_size,
        }

    @property
    def output_prefixes(self) -> tuple[str, ...]:
        """Where a job's ``output_url`` may point: ``ASR_OUTPUT_URL`` and ``ASR_OUTPUT_URLS``."""
        return tuple(p for p in (self.output_url, *self.output_urls) if p)

    def deadline_for(self, audio_seconds: float) -> float | None:
        """Seconds a job with this much audio may run, or ``None`` without a deadline."""
        if not self.timeout_per_audio_second:
            return None
        return self.timeout_base + self.timeout_per_audio_second * audio_seconds


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment on first use."""
    return Settings.from_env()
