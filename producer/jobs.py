"""``python -m producer.jobs``: kept as an alias of ``asr status|cancel|list`` for one release."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from producer.cli import main as _main
from producer.cli.codes import RET_CONNECT, RET_FAILED, RET_OK, RET_UNKNOWN, RET_USAGE

__all__ = ["RET_CONNECT", "RET_ENDED", "RET_OK", "RET_UNKNOWN", "RET_USAGE", "main"]

RET_ENDED = RET_FAILED  #: cancel: the job had already ended


def main(argv: Sequence[str] | None = None) -> int:
    """Old spelling: options may come before the subcommand (``--json status ID``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = next((i for i, arg in enumerate(args) if arg in ("status", "cancel", "list")), None)
    if command:
        args = [args[command], *args[:command], *args[command + 1 :]]
    return _main(args, prog="python -m producer.jobs", default=None)


if __name__ == "__main__":
    sys.exit(main())
