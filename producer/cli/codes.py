"""The exit codes of every ``asr`` subcommand: one table."""

from __future__ import annotations

RET_OK = 0  #: done: every job succeeded, was submitted, or was cancelled
RET_FAILED = 1  #: a job failed; cancel: it had already ended; info: no worker answered
RET_USAGE = 2  #: bad arguments or no input files
RET_CONNECT = 3  #: the broker or result backend cannot be reached
RET_TIMEOUT = 4  #: a job did not end within --timeout (it goes on; fetch it with `asr result ID`)
RET_LOCAL = 5  #: the private stack of `asr demo` / --local could not start
RET_UNKNOWN = 6  #: no stored state, no worker holds the job and it is not in the queue
RET_UPLOAD = 7  #: --upload could not put a file where the workers read it
RET_INTERRUPTED = 130  #: Ctrl-C while waiting (the jobs go on)

EPILOG = (
    "Exit codes: 0 ok, 1 a job failed (cancel: already ended; info: no worker answered), "
    "2 usage, 3 broker unreachable, 4 timeout, 5 the private stack could not start, "
    "6 unknown job id, 7 --upload failed, 130 interrupted."
)
