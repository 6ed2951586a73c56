"""python -m producer.jobs: look at and cancel transcription jobs by their task id.

``status ID`` prints a job's state (with its progress while it runs, its
position while queued, its error once failed); ``cancel ID`` stops a job
(a queued one never runs, a running one is killed and its worker process
replaced; it ends REVOKED); ``list`` prints the jobs the workers hold now.
Add ``--json`` for machine-readable output. The broker comes from
``REDIS_URL`` (or ``CELERY_BROKER_URL`` and ``CELERY_RESULT_BACKEND``), as
for submitting.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence

from producer.client import ENDED_STATES, BrokerUnavailableError, Client, JobStatus

__all__ = ["main"]

RET_OK = 0  #: done (a cancelled job is REVOKED)
RET_ENDED = 1  #: cancel: the job had already ended; nothing was cancelled
RET_USAGE = 2  #: bad arguments
RET_CONNECT = 3  #: the broker or result backend cannot be reached
RET_UNKNOWN = 6  #: no stored state, no worker holds it and it is not in the queue

COLUMNS = ("id", "state", "progress", "worker", "path")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m producer.jobs",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Exit codes: 0 ok, 1 cancel: the job had already ended, 2 usage, "
        "3 broker unreachable, 6 unknown job id.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--queue", help="queue to search for a queued job (default: $ASR_QUEUE or 'asr')")
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", help="state and progress of one job")
    status.add_argument("task_id")
    cancel = commands.add_parser("cancel", help="cancel a queued or running job (it ends REVOKED)")
    cancel.add_argument("task_id")
    cancel.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for REVOKED (default 10)"
    )
    commands.add_parser("list", help="the jobs the workers run or hold now")
    return parser


def _progress(job: JobStatus) -> str:
    if job.progress:
        p = job.progress
        return f"{p['percent']:.1f}% ({p['seconds_done']:.0f}/{p['seconds_total']:.0f} s)"
    if job.queue_position is not None:
        return f"queued #{job.queue_position}"
    return "-"


def _print(jobs: Sequence[JobStatus], as_json: bool, *, many: bool) -> None:
    if as_json:
        data = [dataclasses.asdict(job) for job in jobs]
        print(json.dumps(data if many else data[0], indent=2))
        return
    if many:
        print("\t".join(COLUMNS))
    for job in jobs:
        print("\t".join((job.id, job.state, _progress(job), job.worker or "-", job.path or "-")))
        if job.error and not many:
            print(job.error)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m producer.jobs``; returns the exit code."""
    args = _parser().parse_args(argv)
    client = Client(queue=args.queue)
    try:
        if args.command == "list":
            _print(client.list_jobs(), args.json, many=True)
            return RET_OK
        if args.command == "status":
            job = client.status(args.task_id)
        else:
            before = client.status(args.task_id)
            if before.state in ENDED_STATES:
                _print([before], args.json, many=False)
                print(
                    f"job {args.task_id} had already ended ({before.state}): nothing to cancel",
                    file=sys.stderr,
                )
                return RET_ENDED
            job = client.cancel(args.task_id, timeout=args.timeout)
        _print([job], args.json, many=False)
        if not job.known:
            print(
                f"unknown job {args.task_id}: no stored state (or it expired), no worker holds it, "
                f"and it is not in queue {client.queue!r}",
                file=sys.stderr,
            )
            return RET_UNKNOWN
        return RET_OK
    except BrokerUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return RET_CONNECT
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
