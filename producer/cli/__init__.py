"""``asr`` (also ``python -m producer``): one command line for the transcription fleet.

Subcommands: ``submit`` (the default: ``asr FILES...`` submits them), ``demo``,
``status``, ``cancel``, ``list``, ``result``, ``info``. The broker comes from
``REDIS_URL`` (or ``CELERY_BROKER_URL`` and ``CELERY_RESULT_BACKEND``). Exit
codes are one table for all of them (:mod:`producer.cli.codes`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from celery.exceptions import ImproperlyConfigured

from producer.cli import info, jobs, submit
from producer.cli.codes import EPILOG, RET_CONNECT, RET_INTERRUPTED, RET_OK, RET_USAGE

__all__ = ["main"]

COMMANDS = ("submit", "demo", "status", "cancel", "list", "result", "info")


def parser(prog: str = "asr") -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[0] if __doc__ else None, epilog=EPILOG
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    submit.add_parsers(commands, EPILOG)
    jobs.add_parsers(commands, EPILOG)
    info.add_parsers(commands, EPILOG)
    return top


def main(argv: Sequence[str] | None = None, *, prog: str = "asr", default: str | None = "submit") -> int:
    """Entry point of ``asr`` and ``python -m producer``; returns the exit code.

    Args:
        default: the subcommand of arguments that name none (``asr FILES...``, as
            ``python -m producer FILES...`` always was); None makes that a usage error.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    if default and (not args_list or args_list[0] not in (*COMMANDS, "-h", "--help")):
        args_list.insert(0, default)
    try:
        args = parser(prog).parse_args(args_list)
    except SystemExit as exc:
        return RET_OK if exc.code == 0 else RET_USAGE
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.run(args)
        sys.stdout.flush()
    except ImproperlyConfigured as exc:
        # A broker or backend URL Celery cannot use (REDIS_URL=http://...): one line, no traceback.
        print(f"error: REDIS_URL / CELERY_BROKER_URL / CELERY_RESULT_BACKEND: {exc}", file=sys.stderr)
        return RET_CONNECT
    except KeyboardInterrupt:
        # Ctrl-C outside a wait (submitting, printing a finished result): what was submitted
        # goes on; exit as interrupted, without a traceback.
        print("interrupted", file=sys.stderr)
        return RET_INTERRUPTED
    except BrokenPipeError:
        # The reader (`| head`) went away: stop quietly, as Unix tools do (Python docs, "Note on SIGPIPE").
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return RET_OK
    return code
