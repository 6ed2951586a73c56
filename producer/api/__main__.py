"""python -m producer.api (or ``asr-api``): serve the HTTP API with uvicorn.

The same as ``uvicorn producer.api:app --host H --port P``; the settings come
from the environment (docs/api.md), and a missing key, a bad upload directory or
an unreachable Redis stops it at start with one message.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

__all__ = ["main"]

RET_OK = 0  #: stopped cleanly
RET_USAGE = 2  #: bad arguments
RET_START = 3  #: the service could not start (settings, Redis): uvicorn's own exit code for it


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m producer.api",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Exit codes: 0 stopped, 2 usage, 3 could not start (the reason is logged).",
    )
    parser.add_argument("--host", default=os.environ.get("ASR_API_HOST", "127.0.0.1"),
                        help="address to listen on (default $ASR_API_HOST or 127.0.0.1)")  # fmt: skip
    parser.add_argument("--port", type=int, default=int(os.environ.get("ASR_API_PORT", "8000")),
                        help="port (default $ASR_API_PORT or 8000)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    parser.add_argument("--log-level", default="info", help="uvicorn's log level (default info)")
    parser.add_argument("--proxy-headers", action="store_true",
                        help="trust X-Forwarded-* headers (from $FORWARDED_ALLOW_IPS)")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m producer.api``; returns the exit code."""
    args = _parser().parse_args(argv)
    import uvicorn

    uvicorn.run(
        "producer.api:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        proxy_headers=args.proxy_headers,
    )
    return RET_OK


if __name__ == "__main__":
    sys.exit(main())
