"""asr submit (and asr demo): submit audio files for transcription, optionally wait and write results.

Files may be named directly, as directories (searched for audio files) or as
glob patterns. Without --wait the task ids are printed, one ``id<TAB>path``
per line; with --wait each job shows a progress bar and its transcript is
printed (or written under --out).
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from asr_protocol.formats import FORMATS, render, write
from producer.cli.codes import (
    RET_CONNECT,
    RET_FAILED,
    RET_INTERRUPTED,
    RET_LOCAL,
    RET_OK,
    RET_TIMEOUT,
    RET_UPLOAD,
    RET_USAGE,
)
from producer.client import (
    BrokerUnavailableError,
    Client,
    Job,
    JobTimeoutError,
    TranscriptionFailed,
)
from producer.config import ProducerSettings
from producer.progress import wait_with_progress
from producer.upload import UPLOAD_URL_ENV, is_url, upload

__all__ = ["add_parsers", "run"]

AUDIO_SUFFIXES = frozenset(
    ".wav .flac .mp3 .m4a .ogg .oga .opus .webm .mp4 .mka .mkv .aac .wma .aiff .aif".split()
)
SAMPLES_DIR = Path(__file__).resolve().parents[2] / "samples"

log = logging.getLogger(__name__)


def add_parsers(commands: Any, epilog: str) -> None:
    """``submit`` and ``demo`` (``submit --local``, the samples when no file is named)."""
    for name, help_text in (
        ("submit", "submit audio files; with --wait (or --format/--out) wait and print or write results"),
        ("demo", "the same on a private Redis and a 2-child worker started for this run (= submit --local)"),
    ):
        parser = commands.add_parser(name, help=help_text, description=help_text, epilog=epilog)
        _arguments(parser)
        parser.set_defaults(run=run, local=name == "demo")


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files", nargs="*", help="audio files, directories, glob patterns or URLs (s3://, https://)"
    )
    parser.add_argument("--wait", action="store_true", help="wait for the jobs, with a progress bar each")
    parser.add_argument("--format", choices=FORMATS, help="output format (implies --wait; default txt)")
    parser.add_argument("--out", metavar="DIR", help="write DIR/<name>.<format> per file (implies --wait)")
    parser.add_argument("--queue", help="queue to send to (default: $ASR_QUEUE or 'asr')")
    parser.add_argument(
        "--timeout", type=_positive, default=3600.0, help="seconds to wait per run (default 3600)"
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bars (also when stderr is not a tty)"
    )
    parser.add_argument(
        "--local",
        action="store_true",
        default=argparse.SUPPRESS,
        help="start a private Redis (unless REDIS_URL is set) and a 2-child worker for this run; "
        "without FILES, transcribe the samples shipped in samples/",
    )
    _job_arguments(parser.add_argument_group("job options (passed to asr.transcribe)"))
    _output_arguments(parser)


def _job_arguments(job: argparse._ArgumentGroup) -> None:
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
    job.add_argument(
        "--known-speaker",
        action="append",
        type=_known_speaker,
        metavar="NAME=PATH",
        help="name the speaker whose voice matches this 2-10 s recording (path or URL; repeatable)",
    )
    job.add_argument("--callback-url", help="POST a signed JSON webhook here when each job ends")
    job.add_argument(
        "--fanout-seconds",
        type=float,
        metavar="S",
        help="split audio longer than S seconds across the fleet (0: never; default: ASR_FANOUT_SECONDS)",
    )


def _output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output-url",
        metavar="URL",
        help="the worker also writes each transcript under this s3:// prefix or directory",
    )
    parser.add_argument(
        "--output-format",
        action="append",
        choices=FORMATS,
        help="a format written to --output-url (repeat for several; default json)",
    )
    parser.add_argument(
        "--upload",
        action="store_true",
        help=f"put local files under ${UPLOAD_URL_ENV} (s3:// prefix or shared directory) and submit those",
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


def _known_speaker(raw: str) -> tuple[str, str]:
    name, sep, reference = raw.partition("=")
    if not sep or not name.strip() or not reference.strip():
        raise argparse.ArgumentTypeError(f"must be NAME=PATH (a name, =, a recording), not {raw!r}")
    return name.strip(), reference.strip()


def _positive(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {raw}")
    return value


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
    if args.output_url:
        options["output_url"] = args.output_url
    if args.output_format:
        options["output_formats"] = args.output_format
    if args.channels:
        options["channels"] = "split" if args.channels == "split" else args.channels.split(",")
    if args.known_speaker:
        options["known_speakers"] = dict(args.known_speaker)
    if args.highlight_words or args.word_level:
        options["word_timestamps"] = True
    return options


def expand_inputs(patterns: Sequence[str]) -> Iterator[Path | str]:
    """Files named, audio files under directories (sorted), glob matches, and URLs as they are."""
    for pattern in patterns:
        if is_url(pattern):
            yield pattern
            continue
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
    if fmt == "json":
        # JSON Lines: stdout stays machine-readable with several files.
        print(json.dumps(result, ensure_ascii=False, separators=(",", ":")) if many else render(result, fmt))
        return
    if many:
        print(f"==> {job.path} <==")
    print(render(result, fmt, **render_options).rstrip("\n"))


def _run(client: Client, files: list[Path | str], args: argparse.Namespace) -> int:
    if args.upload:
        try:
            files = [f if is_url(f) else upload(f) for f in files]
        except Exception as exc:  # boto3's and the filesystem's many errors, told plainly
            print(f"error: --upload failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return RET_UPLOAD
    jobs = client.submit_many(files, queue=args.queue, batch=args.batch, **_job_options(args))
    if not (args.wait or args.format or args.out):
        for job in jobs:
            print(f"{job.id}\t{job.path}")
        return RET_OK
    show_progress = not args.no_progress and sys.stderr.isatty()
    try:
        outcomes = wait_with_progress(jobs, timeout=args.timeout, show=show_progress)
    except KeyboardInterrupt:
        for job in jobs:
            if not job.ready():
                print(
                    f"{job.id}\t{job.path}\tstill running; fetch it with: asr result {job.id}",
                    file=sys.stderr,
                )
        return RET_INTERRUPTED
    code = RET_OK
    for job, outcome in zip(jobs, outcomes, strict=False):
        if isinstance(outcome, JobTimeoutError):
            print(f"timeout: {outcome}; the job goes on: fetch it with: asr result {job.id}", file=sys.stderr)
            code = max(code, RET_TIMEOUT)
        elif isinstance(outcome, TranscriptionFailed):
            print(f"failed: {job.path}: {outcome.error_type}: {outcome.message}", file=sys.stderr)
            code = code or RET_FAILED
        else:
            _output(job, outcome, args, many=len(jobs) > 1)
    return code


def _check_inputs(files: list[Path | str], args: argparse.Namespace) -> str | None:
    """Why these inputs cannot run, found before anything is started or submitted."""
    paths = [Path(f) for f in files if not is_url(f)]
    # Only the private stack is known to share this filesystem: a remote worker may see
    # storage this machine does not, and names its own AudioNotFoundError.
    missing = [str(path) for path in paths if args.local and not path.exists()]
    if missing:
        return f"no such file: {', '.join(missing)}"
    if args.format not in ("srt", "vtt") and (args.highlight_words or args.word_level):
        return "--highlight-words and --word-level apply to --format srt and vtt"
    if args.out:
        stems: dict[str, str] = {}
        for name in files:
            stem = Path(str(name).split("?", 1)[0]).stem
            other = stems.setdefault(stem, str(name))
            if other != str(name):
                return f"--out: {other} and {name} would both be written as {stem}.{args.format or 'txt'}"
    return None


def run(args: argparse.Namespace) -> int:
    """``asr submit`` / ``asr demo``; returns the exit code."""
    patterns = args.files or ([str(SAMPLES_DIR)] if args.local else [])
    if not patterns:
        print("error: name at least one audio file, directory or glob (or use asr demo)", file=sys.stderr)
        return RET_USAGE
    files = list(expand_inputs(patterns))
    if not files:
        print(f"error: no audio files found in {' '.join(patterns)}", file=sys.stderr)
        return RET_USAGE
    problem = _check_inputs(files, args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return RET_USAGE
    try:
        with ExitStack() as stack:
            url = None
            if args.local:
                from producer.local import LocalStack

                print("starting a private Redis and a worker with 2 children ...", file=sys.stderr)
                redis_url = ProducerSettings.from_env().redis_url or None
                stack_ = stack.enter_context(LocalStack(redis_url=redis_url))
                url = stack_.url
                args.wait = True
            client = Client(url, url) if url else Client()
            stack.callback(client.close)
            code = _run(client, files, args)
            if code == RET_INTERRUPTED and args.local:
                print("stopping the private worker and Redis ...", file=sys.stderr)
                stack_.stop(timeout=10, cold=True)
            return code
    except BrokerUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return RET_CONNECT
    except (RuntimeError, TimeoutError, FileNotFoundError) as exc:
        print(f"error: the private stack could not start: {exc}", file=sys.stderr)
        return RET_LOCAL
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return RET_USAGE
