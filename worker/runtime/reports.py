"""What each worker serves, answered by its parent: the ``asr_info`` inspect command.

The model lives in the prefork children, but Celery's remote control commands
(``celery inspect ...``) are answered by the parent, which never loads a model.
So each child *reports* its facts and the parent only relays them:

* Each child writes its record (hostname, pid, queues, ``get_model_config()``,
  versions) as a small JSON file, ``<pid>.json``, in a private directory that
  the parent makes at ``worker_init`` (before it forks). A child writes it
  after ``worker_process_init`` (after the model's handler: :mod:`worker.runtime.hooks`
  lists the order, so the record says whether the load worked and how long it took),
  again after any job that changed its facts (a model that failed at start and
  loaded on a later job), and removes it when it exits.
* The ``asr_info`` inspect command, answered by the parent, returns one entry
  per *live* child (the pool's PIDs), reading these files. A child with no
  file yet is still loading: its ``model`` is ``None``. Files of dead children
  (recycled by ``worker_max_tasks_per_child``, or killed) are pruned.

Why files and not Redis: parent and children share a machine, so a file needs
no connection, no expiry to tune, and cannot outlive a fleet change in the
broker. Why not only the ``asr.info`` task: a task reaches whichever child is
free on a shared queue, so N calls do not reach N children, and a busy worker
would answer only after its jobs. The parent answers a broadcast at once, even
while every child is busy transcribing.

The ``asr.info`` task (:mod:`worker.tasks.info`) checks one serving child end to
end (it runs through the queue like a job). Neither path ever loads a model.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from celery import current_app
from celery.worker.control import inspect_command

from worker.asr import get_model_config

__all__ = [
    "COMMAND_NAME",
    "describe_process",
    "make_reports_dir",
    "publish",
    "remove_report",
    "remove_reports_dir",
    "report_after_load",
    "report_if_changed",
    "versions",
]

COMMAND_NAME = "asr_info"
_DISTRIBUTIONS = {"faster_whisper": "faster-whisper", "ctranslate2": "ctranslate2", "celery": "celery"}

log = logging.getLogger(__name__)

#: Set in the parent at ``worker_init``; the children inherit it through fork.
_reports_dir: Path | None = None
_reports_owner: int | None = None
_hostname: str | None = None
#: What this child last wrote, so a job that changed nothing writes nothing.
_last_record: dict[str, Any] | None = None


def versions() -> dict[str, str]:
    """Versions of the packages that decide a transcript, from package metadata (no imports)."""
    found = {}
    for key, distribution in _DISTRIBUTIONS.items():
        try:
            found[key] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            found[key] = "not installed"
    return found


def _configured_queues() -> list[str]:
    # The queues selected at start (-Q or the default queue); children inherit them.
    return sorted(current_app.amqp.queues.consume_from)


def describe_process(hostname: str | None = None) -> dict[str, Any]:
    """This process's record: hostname, pid, queues, model facts and versions. Never loads a model."""
    record: dict[str, Any] = {"hostname": hostname or _hostname, "pid": os.getpid()}
    queues = _configured_queues()
    if queues:
        record["queues"] = queues
    record["model"] = get_model_config()
    record["versions"] = versions()
    return record


def publish(record: dict[str, Any]) -> None:
    global _last_record
    if _reports_dir is None:
        return
    target = _reports_dir / f"{record['pid']}.json"
    scratch = target.with_suffix(".tmp")
    try:
        scratch.write_text(json.dumps(record))
        os.replace(scratch, target)  # a reader never sees half a file
    except OSError as exc:
        log.warning("could not write this child's info record %s: %s", target, exc)
        return
    _last_record = record


def _read(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


@inspect_command(default_timeout=5.0)
def asr_info(state: Any) -> dict[str, Any]:
    """The worker's queues and versions, and each live child's model facts."""
    consumer = state.consumer
    task_consumer = getattr(consumer, "task_consumer", None)
    queues = sorted(q.name for q in task_consumer.queues) if task_consumer else _configured_queues()
    pool = getattr(consumer, "pool", None)
    pids = [int(pid) for pid in (pool.info.get("processes", []) if pool is not None else [])]
    reply: dict[str, Any] = {
        "hostname": state.hostname,
        "pid": os.getpid(),
        "queues": queues,
        "versions": versions(),
    }
    if not pids:
        # solo or threads pool: this process serves the jobs itself.
        reply["children"] = [describe_process(state.hostname)]
        return reply
    children = []
    for pid in sorted(pids):
        record = _read(_reports_dir / f"{pid}.json") if _reports_dir is not None else None
        children.append(record or {"hostname": state.hostname, "pid": pid, "queues": queues, "model": None})
    reply["children"] = children
    _prune(set(pids))
    return reply


def _prune(live: set[int]) -> None:
    if _reports_dir is None:
        return
    for path in _reports_dir.glob("*.json"):
        if path.stem.isdigit() and int(path.stem) not in live:
            path.unlink(missing_ok=True)


def make_reports_dir(sender: Any = None, **_: Any) -> None:
    global _reports_dir, _reports_owner, _hostname
    _hostname = getattr(sender, "hostname", None)
    _reports_dir = Path(tempfile.mkdtemp(prefix="asr-worker-info-"))
    _reports_owner = os.getpid()


def report_after_load(**_: Any) -> None:
    publish(describe_process())


def report_if_changed(**_: Any) -> None:
    if _reports_dir is None or _last_record is None:
        return
    if get_model_config() != _last_record.get("model"):
        publish(describe_process())


def remove_report(pid: int | None = None, **_: Any) -> None:
    # Sent with the child's pid (billiard may send it from the parent).
    if _reports_dir is not None:
        (_reports_dir / f"{pid or os.getpid()}.json").unlink(missing_ok=True)


def remove_reports_dir(**_: Any) -> None:
    if _reports_dir is not None and os.getpid() == _reports_owner:
        shutil.rmtree(_reports_dir, ignore_errors=True)
