"""python -m producer: submit audio files for transcription, optionally wait and write results.

Files may be named directly, as directories (searched for audio files) or as
glob patterns. Without --wait the task ids are printed, one ``id<TAB>path``
per line; with --wait each job shows a progress bar and its transcript is
printed (or written under --out).
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

from producer.client import (
    BrokerUnavailableError,
    Client,
    Job,
    JobTimeoutError,
    TranscriptionFailed,
)
from producer.formats import FORMATS, render, write
from producer.progress import wait_with_progress

__all__ = ["main"]

RET_OK = 0  #: every job succeeded (or was submitted, without --wait)
RET_FAILED = 1  #: at least one job failed on the worker
RET_USAGE = 2  #: bad arguments or no input files
RET_CONNECT = 3  #: the broker or result backend cannot be reached
RET_TIMEOUT = 4  #: a job did not end within --timeout
RET_LOCAL = 5  #: the private stack of --local could not start

AUDIO_SUFFIXES = frozenset(
    ".wav .flac .mp3 .m4a .ogg .oga .opus .webm .mp4 .mka .mkv .aac .wma .aiff .aif".split()
)
SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m producer",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Exit codes: 0 ok, 1 a job failed, 2 usage, 3 broker unreachable, 4 timeout, "
        "5 --local failed to start.",
    )
    parser.add_argument("files", nargs="*", help="audio files, directories or glob patterns")
    parser.add_argument("--wait", action="store_true", help="wait for the jobs, with a progress bar each")
    parser.add_argument("--format", choices=FORMATS, help="output format (implies --wait; default txt)")
    parser.add_argument("--out", metavar="DIR", help="write DIR/<name>.<format> per file (implies --wait)")
    parser.add_argument("--queue", help="queue to send to (default: $ASR_QUEUE or 'asr')")
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds to wait per run (default 3600)"
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bars (also when stderr is not a tty)"
    )
    parser.add_argument(
        "--local",
        action="store_true",
        help="start a private Redis (unless REDIS_URL is set) and a 2-child worker for this run; "
        "without FILES, transcribe the samples shipped in samples/",
    )
    job = parser.add_argument_group("job options (passed to asr.transcribe)")
    job.add_argument("--language", help="language code, e.g. en (default: detect)")
    job.add_argument("--task", choices=("transcribe", "translate"), help="translate into English instead")
    job.add_argument("--beam-size", type=int, help="beam size (default: the worker's ASR_BEAM_SIZE)")
    job.add_argument("--vad-filter", action="store_true", help="skip silence with the Silero VAD")
    job.add_argument("--word-timestamps", action="store_true", help="per-word timings in the result")
    job.add_argument("--initial-prompt", help="text that primes the decoder")
    job.add_argument("--hotwords", help="words to favour")
    job.add_argument("--temperature", type=float, help="decoding temperature (default: fallback ladder)")
    job.add_argument(
        "--channels",
        metavar="split|NAME,NAME",
        help="transcribe each channel of a stereo file on its own: 'split' (labels 0, 1) or one name each",
    )
    job.add_argument(
        "--diarize", action="store_true", help="label speakers (a worker with ASR_DIARIZATION=true)"
    )
    job.add_argument("--num-speakers", type=int, help="the number of speakers, if known (with --diarize)")
    job.add_argument("--min-speakers", type=int, help="at least N speakers (with --diarize)")
    job.add_argument("--max-speakers", type=int, help="at most N speakers (with --diarize)")
    job.add_argument("--callback-url", help="POST a signed JSON webhook here when each job ends")
    job.add_argument(
        "--fanout-seconds",
        type=float,
        metavar="S",
        help="split audio longer than S seconds across the fleet (0: never; default: ASR_FANOUT_SECONDS)",
    )
    parser.add_argument(
        "--batch",
        action="store_true",
        help="send short clips as asr.transcribe_clip jobs, which a worker decodes in batches",
    )
    subs = parser.add_argument_group("subtitle options (srt, vtt)")
    subs.add_argument("--max-line-width", type=int, help="wrap cue lines at N characters")
    subs.add_argument("--max-line-count", type=int, help="at most N lines per cue")
    subs.add_argument("--highlight-words", action="store_true", help="underline each word as it is spoken")
    subs.add_argument("--word-level", action="store_true", help="one cue per word")
    return parser


def _job_options(args: argparse.Namespace) -> dict[str, object]:
    options: dict[str, object] = {}
    for name in (
        "language",
        "task",
        "beam_size",
        "initial_prompt",
        "hotwords",
        "temperature",
        "callback_url",
        "fanout_seconds",
        "num_speakers",
        "min_speakers",
        "max_speakers",
    ):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    for flag in ("vad_filter", "word_timestamps", "diarize"):
        if getattr(args, flag):
            options[flag] = True
    if args.channels:
        options["channels"] = "split" if args.channels == "split" else args.channels.split(",")
    if args.highlight_words or args.word_level:
        options["word_timestamps"] = True
    return options


def expand_inputs(patterns: Sequence[str]) -> Iterator[Path]:
    """Files named, audio files under directories (sorted), and glob matches."""
    for pattern in patterns:
        matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        for match in matches:
            path = Path(match)
            if path.is_dir():
                yield from sorted(
                    p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
                )
            else:
                yield path


def _output(job: Job, result: dict[str, object], args: argparse.Namespace, many: bool) -> None:
    fmt = args.format or "txt"
    render_options = {
        "max_line_width": args.max_line_width,
        "max_line_count": args.max_line_count,
        "highlight_words": args.highlight_words,
        "word_level": args.word_level,
    }
    if args.out:
        path = write(result, fmt, args.out, **render_options)
        print(path)
        return
    if many:
        print(f"==> {job.path} <==")
    print(render(result, fmt, **render_options).rstrip("\n"))


def _run(client: Client, files: list[Path], args: argparse.Namespace) -> int:
    jobs = client.submit_many(files, queue=args.queue, batch=args.batch, **_job_options(args))
    if not (args.wait or args.format or args.out):
        for job in jobs:
            print(f"{job.id}\t{job.path}")
        return RET_OK
    show_progress = not args.no_progress and sys.stderr.isatty()
    outcomes = wait_with_progress(jobs, timeout=args.timeout, show=show_progress)
    code = RET_OK
    for job, outcome in zip(jobs, outcomes, strict=False):
        if isinstance(outcome, JobTimeoutError):
            print(f"timeout: {outcome}", file=sys.stderr)
            code = max(code, RET_TIMEOUT)
        elif isinstance(outcome, TranscriptionFailed):
            print(f"failed: {job.path}: {outcome.error_type}: {outcome.message}", file=sys.stderr)
            code = code or RET_FAILED
        else:
            _output(job, outcome, args, many=len(jobs) > 1)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m producer``; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    patterns = args.files or ([str(SAMPLES_DIR)] if args.local else [])
    if not patterns:
        parser.print_usage(sys.stderr)
        print("error: name at least one audio file, directory or glob (or use --local)", file=sys.stderr)
        return RET_USAGE
    files = list(expand_inputs(patterns))
    if not files:
        print(f"error: no audio files found in {' '.join(patterns)}", file=sys.stderr)
        return RET_USAGE
    if args.format not in ("srt", "vtt") and (args.highlight_words or args.word_level):
        print("error: --highlight-words and --word-level apply to --format srt and vtt", file=sys.stderr)
        return RET_USAGE
    try:
        with ExitStack() as stack:
            url = None
            if args.local:
                from producer.local import LocalStack

                print("starting a private Redis and a worker with 2 children ...", file=sys.stderr)
                stack_ = stack.enter_context(LocalStack(redis_url=os.environ.get("REDIS_URL") or None))
                url = stack_.url
                args.wait = True
            client = Client(url, url) if url else Client()
            stack.callback(client.close)
            return _run(client, files, args)
    except BrokerUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return RET_CONNECT
    except (RuntimeError, TimeoutError, FileNotFoundError) as exc:
        print(f"error: the private stack could not start: {exc}", file=sys.stderr)
        return RET_LOCAL
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return RET_USAGE
