"""asr status | cancel | list | result: look at, cancel and fetch transcription jobs by their task id.

``status ID`` prints a job's state (with its progress while it runs, its
position while queued, its error once failed); ``cancel ID`` stops a job
(a queued one never runs, a running one is killed and its worker process
replaced; it ends REVOKED); ``list`` prints the jobs the workers hold now; ``result ID`` prints (or
writes) a finished job's transcript in any output format.
Add ``--json`` for machine-readable output. The broker comes from
``REDIS_URL`` (or ``CELERY_BROKER_URL`` and ``CELERY_RESULT_BACKEND``), as
for submitting.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from asr_protocol.formats import FORMATS, render, write
from producer.cli.codes import RET_CONNECT, RET_FAILED, RET_OK, RET_TIMEOUT, RET_UNKNOWN
from producer.client import (
    ENDED_STATES,
    BrokerUnavailableError,
    Client,
    JobStatus,
    JobTimeoutError,
    TranscriptionFailed,
)

__all__ = ["add_parsers"]

COLUMNS = ("id", "state", "progress", "worker", "path")


def add_parsers(commands: Any, epilog: str) -> None:
    """``status``, ``cancel``, ``list`` and ``result``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    common.add_argument("--queue", help="queue to search for a queued job (default: $ASR_QUEUE or 'asr')")
    status = commands.add_parser(
        "status", parents=[common], help="state and progress of one job", epilog=epilog
    )
    status.add_argument("task_id")
    status.set_defaults(run=_status)
    cancel = commands.add_parser(
        "cancel", parents=[common], help="cancel a queued or running job (it ends REVOKED)", epilog=epilog
    )
    cancel.add_argument("task_id")
    cancel.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for REVOKED (default 10)"
    )
    cancel.set_defaults(run=_cancel)
    listing = commands.add_parser(
        "list", parents=[common], help="the jobs the workers run or hold now", epilog=epilog
    )
    listing.set_defaults(run=_list)
    result = commands.add_parser(
        "result", parents=[common], help="a finished job's transcript, by its id", epilog=epilog
    )
    result.add_argument("task_id")
    result.add_argument("--format", choices=FORMATS, default="txt", help="output format (default txt)")
    result.set_defaults(json=False)
    result.add_argument("--out", metavar="DIR", help="write DIR/<name>.<format> and print its path")
    result.add_argument(
        "--wait", type=float, default=0.0, metavar="S", help="wait up to S seconds for the job to end"
    )
    result.set_defaults(run=_result)


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


def _connected(command: Callable[[Client, argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        client = Client(queue=getattr(args, "queue", None))
        try:
            return command(client, args)
        except BrokerUnavailableError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return RET_CONNECT
        finally:
            client.close()

    return run


@_connected
def _list(client: Client, args: argparse.Namespace) -> int:
    _print(client.list_jobs(), args.json, many=True)
    return RET_OK


@_connected
def _status(client: Client, args: argparse.Namespace) -> int:
    return _shown(client, client.status(args.task_id), args)


@_connected
def _cancel(client: Client, args: argparse.Namespace) -> int:
    before = client.status(args.task_id)
    if before.state in ENDED_STATES:
        _print([before], args.json, many=False)
        print(f"job {args.task_id} had already ended ({before.state}): nothing to cancel", file=sys.stderr)
        return RET_FAILED
    return _shown(client, client.cancel(args.task_id, timeout=args.timeout), args)


def _shown(client: Client, job: JobStatus, args: argparse.Namespace) -> int:
    _print([job], args.json, many=False)
    if not job.known:
        print(
            f"unknown job {args.task_id}: no stored state (or it expired), no worker holds it, "
            f"and it is not in queue {client.queue!r}",
            file=sys.stderr,
        )
        return RET_UNKNOWN
    return RET_OK


@_connected
def _result(client: Client, args: argparse.Namespace) -> int:
    status = client.status(args.task_id)
    if not status.known:
        return _shown(client, status, args)
    try:
        result = client.job(args.task_id).result(timeout=args.wait or 0.01)
    except JobTimeoutError:
        print(f"job {args.task_id} is {status.state}, not finished: try again later", file=sys.stderr)
        return RET_TIMEOUT
    except TranscriptionFailed as exc:
        print(f"failed: {exc.error_type}: {exc.message}", file=sys.stderr)
        return RET_FAILED
    if args.out:
        print(write(result, args.format, args.out))
    else:
        print(render(result, args.format).rstrip("\n"))
    return RET_OK
