"""``python -m producer.ops_cli``: kept as an alias of ``asr info`` for one release."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from producer.cli import main as _main

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    return _main(sys.argv[1:] if argv is None else argv, prog="python -m producer.ops_cli", default=None)


if __name__ == "__main__":
    sys.exit(main())
