"""Validate the options of an ``asr.transcribe`` job.

Options arrive as JSON from any producer, so each is checked for name, type
and range here, before any audio is read; a bad one fails the job with
:class:`InvalidOptionsError` and is never retried.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from asr_protocol.options import OUTPUT_FORMATS, WHOLE_JOB_OPTIONS
from worker.pipeline.errors import InvalidOptionsError
from worker.pipeline.settings import MIN_PIECE_SECONDS
from worker.pipeline.urls import mask_url

__all__ = [
    "JOB_OPTIONS",
    "OUTPUT_FORMATS",
    "WHOLE_JOB_OPTIONS",
    "TranscribeOptions",
    "check_callback_url",
    "check_output_url",
    "parse_options",
]

TASKS = ("transcribe", "translate")
#: Options about the job rather than the decoder: not passed to ``WhisperModel.transcribe``.
JOB_OPTIONS = WHOLE_JOB_OPTIONS | {
    "channels", "diarize", "num_speakers", "min_speakers", "max_speakers", "known_speakers",
}  # fmt: skip
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: The longest piece a job may ask for: a day of audio.
MAX_PIECE_SECONDS = 86400.0


@dataclass(frozen=True)
class TranscribeOptions:
    """The options a job may set; ``None`` means the worker's default."""

    #: Language code ("en"); None detects it from the first 30 s.
    language: str | None = None
    #: "transcribe", or "translate" into English.
    task: str = "transcribe"
    #: Beam size; None takes ASR_BEAM_SIZE.
    beam_size: int | None = None
    #: Drop silence with the Silero VAD before decoding.
    vad_filter: bool = False
    #: Add per-word timings to each segment.
    word_timestamps: bool = False
    #: Text that primes the decoder (names, spelling, style).
    initial_prompt: str | None = None
    #: Words to favour (faster-whisper's hotwords prompt).
    hotwords: str | None = None
    #: One temperature or a fallback ladder; None keeps faster-whisper's default ladder.
    temperature: float | tuple[float, ...] | None = None
    #: None mixes the channels down; "split" (or one name per channel) transcribes each on its own.
    channels: str | tuple[str, ...] | None = None
    #: An http(s) URL on an ASR_WEBHOOK_ALLOWED_HOSTS host that is POSTed the outcome.
    callback_url: str | None = None
    #: Split audio longer than this across the fleet; 0 never does; None takes ASR_FANOUT_SECONDS.
    fanout_seconds: float | None = None
    #: Write the transcript under this ``s3://`` prefix or directory (see ``worker.pipeline.outputs``).
    output_url: str | None = None
    #: The formats written to ``output_url`` (or ``ASR_OUTPUT_URL``); None writes json.
    output_formats: tuple[str, ...] | None = None
    #: Label each word and segment with its speaker (needs a worker with ASR_DIARIZATION=true).
    diarize: bool = False
    #: The number of speakers, if known; else it is found between min_speakers and max_speakers.
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    #: ``(name, reference)`` pairs: a 2-10 s recording (path or URL, read like the job's audio)
    #: of each speaker to name (``worker.pipeline.known_speakers``).
    known_speakers: tuple[tuple[str, str], ...] | None = None

    def to_kwargs(self, default_beam_size: int) -> dict[str, Any]:
        """Keyword arguments for ``WhisperModel.transcribe``."""
        kwargs = {k: v for k, v in asdict(self).items() if v is not None and k not in JOB_OPTIONS}
        kwargs["beam_size"] = self.beam_size or default_beam_size
        if isinstance(self.temperature, tuple):
            kwargs["temperature"] = list(self.temperature)
        return kwargs


def _languages() -> frozenset[str]:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    return frozenset(_LANGUAGE_CODES)


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidOptionsError(f"option {name} must be true or false, not {value!r}")
    return value


def _optional_text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidOptionsError(f"option {name} must be a string, not {type(value).__name__}")
    return value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _temperature(value: Any) -> float | tuple[float, ...] | None:
    if value is None:
        return None
    values = value if isinstance(value, (list, tuple)) else [value]
    if not values or not all(_number(v) and 0.0 <= v <= 1.0 for v in values):
        raise InvalidOptionsError(
            f"option temperature must be a number or a list of numbers in [0, 1], not {value!r}"
        )
    floats = tuple(float(v) for v in values)
    return floats[0] if not isinstance(value, (list, tuple)) else floats


def _fanout_seconds(value: Any) -> float | None:
    if value is None:
        return None
    if not _number(value) or not (value == 0 or MIN_PIECE_SECONDS <= value <= MAX_PIECE_SECONDS):
        raise InvalidOptionsError(
            f"option fanout_seconds must be 0 (never split) or {MIN_PIECE_SECONDS:g} to "
            f"{MAX_PIECE_SECONDS:g} seconds, not {value!r:.80}"
        )
    return float(value)


def _channels(value: Any) -> str | tuple[str, ...] | None:
    if value is None or value == "split":
        return value
    if (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, str) and v.strip() for v in value)
        and len({v.strip() for v in value}) == 2
    ):
        return tuple(v.strip() for v in value)
    raise InvalidOptionsError(
        "option channels must be 'split' or a list of two distinct channel names "
        f"(left, right), not {value!r:.80}"
    )


#: The most speakers a job may name.
MAX_SPEAKERS = 32
#: The most known speakers (references) a job may give, and the longest name.
MAX_KNOWN_SPEAKERS = 16
MAX_NAME_LENGTH = 100


def _known_speakers(value: Any, diarize: bool) -> tuple[tuple[str, str], ...] | None:
    """``known_speakers``: a non-empty object of distinct names to reference paths or URLs."""
    if value is None:
        return None
    if not diarize:
        raise InvalidOptionsError("option known_speakers needs diarize=true")
    if not isinstance(value, Mapping) or not 1 <= len(value) <= MAX_KNOWN_SPEAKERS:
        raise InvalidOptionsError(
            f"option known_speakers must be an object of 1 to {MAX_KNOWN_SPEAKERS} names, each to a "
            f"reference recording (path or URL), not {value!r:.80}"
        )
    out: dict[str, str] = {}
    for name, source in value.items():
        shown = name.strip() if isinstance(name, str) else ""
        if not shown or len(shown) > MAX_NAME_LENGTH:
            raise InvalidOptionsError(
                f"option known_speakers: a name must be 1 to {MAX_NAME_LENGTH} characters, not {name!r:.80}"
            )
        if shown in out:
            raise InvalidOptionsError(f"option known_speakers names {shown!r:.80} twice")
        if not isinstance(source, str) or not source.strip():
            raise InvalidOptionsError(
                f"option known_speakers[{shown!r:.80}] must be a path or URL of a recording, "
                f"not {source!r:.80}"
            )
        out[shown] = source.strip()
    return tuple(out.items())


def _speakers(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``diarize`` and its speaker counts, checked (counts only with ``diarize``)."""
    counts: dict[str, int | None] = {}
    for name in ("num_speakers", "min_speakers", "max_speakers"):
        value = raw.get(name)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_SPEAKERS
        ):
            raise InvalidOptionsError(
                f"option {name} must be a whole number from 1 to {MAX_SPEAKERS}, not {value!r:.80}"
            )
        counts[name] = value
    diarize = _bool("diarize", raw.get("diarize", False))
    if not diarize and any(v is not None for v in counts.values()):
        raise InvalidOptionsError("options num_speakers, min_speakers and max_speakers need diarize=true")
    lowest, highest = counts["min_speakers"], counts["max_speakers"]
    if lowest is not None and highest is not None and lowest > highest:
        raise InvalidOptionsError(f"option min_speakers={lowest} is more than max_speakers={highest}")
    return {
        "diarize": diarize,
        **counts,
        "known_speakers": _known_speakers(raw.get("known_speakers"), diarize),
    }


def _host_port(netloc: str) -> tuple[str, int | None]:
    parsed = urlsplit(f"//{netloc}")
    return (parsed.hostname or "", parsed.port)


def check_callback_url(value: Any, allowed_hosts: Collection[str]) -> str:
    """Check a webhook URL against ``ASR_WEBHOOK_ALLOWED_HOSTS`` (``host`` or ``host:port`` entries).

    A bare ``host`` entry allows any port on that host; ``host:port`` only that
    port (a URL without a port means 80 or 443).

    Raises:
        InvalidOptionsError: webhooks are off, or the URL is malformed or names another host.
    """
    if not allowed_hosts:
        raise InvalidOptionsError(
            "option callback_url: webhooks are disabled on this worker (ASR_WEBHOOK_ALLOWED_HOSTS is empty)"
        )
    if not isinstance(value, str) or not value.strip() or len(value) > 2048:
        raise InvalidOptionsError(f"option callback_url must be an http(s) URL, not {value!r:.80}")
    try:
        url = urlsplit(value.strip())
        port = url.port or _DEFAULT_PORTS.get(url.scheme.lower())
    except ValueError:
        raise InvalidOptionsError(f"option callback_url is not a valid URL: {_shown(value)!r:.200}") from None
    if url.scheme.lower() not in _DEFAULT_PORTS or not url.hostname:
        raise InvalidOptionsError(f"option callback_url must be an http(s) URL, not {_shown(value)!r:.200}")
    if url.username is not None or url.password is not None:
        # Credentials in a URL end up in logs; authenticate with the signature instead.
        raise InvalidOptionsError("option callback_url must not carry credentials (user:password@)")
    for entry in allowed_hosts:
        host, entry_port = _host_port(entry)
        if host == url.hostname.lower() and entry_port in (None, port):
            return value.strip()
    raise InvalidOptionsError(
        f"option callback_url: host {url.hostname}:{port} is not in ASR_WEBHOOK_ALLOWED_HOSTS"
    )


def _shown(url: str) -> str:
    """``url`` as an error may show it: a query string (a token) masked."""
    return mask_url(url) if "://" in url else url


def _output_formats(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    values = [value] if isinstance(value, str) else value
    if (
        not isinstance(values, (list, tuple))
        or not values
        or not all(isinstance(v, str) and v in OUTPUT_FORMATS for v in values)
    ):
        raise InvalidOptionsError(
            f"option output_formats must be a list of {', '.join(OUTPUT_FORMATS)}, not {value!r:.80}"
        )
    return tuple(dict.fromkeys(values))


def check_output_url(value: Any, allowed: Collection[str]) -> str:
    """Check an ``output_url`` against ``ASR_OUTPUT_URL`` and ``ASR_OUTPUT_URLS`` (prefixes).

    Raises:
        InvalidOptionsError: outputs are off, or the URL is malformed or outside every prefix.
    """
    if not isinstance(value, str) or not value.strip() or len(value) > 2048:
        raise InvalidOptionsError(
            f"option output_url must be an s3:// prefix or a directory, not {value!r:.80}"
        )
    value = value.strip()
    if value.lower().startswith("s3://"):
        parts = urlsplit(value)
        if not parts.netloc or "@" in parts.netloc or parts.query:
            raise InvalidOptionsError(f"option output_url is not an s3://bucket/prefix: {value!r:.200}")
        target = f"s3://{parts.netloc.lower()}{parts.path.rstrip('/')}/"
    elif value.startswith("/") and "\x00" not in value:
        target = os.path.realpath(value)  # a symlink inside an allowed directory may not lead out
    else:
        raise InvalidOptionsError(
            f"option output_url must be an s3:// prefix or an absolute directory: {value!r:.200}"
        )
    for prefix in allowed:
        if prefix.startswith("s3://"):
            inside = target.startswith(prefix)
        else:
            inside = _under(target, os.path.realpath(prefix))
        if inside:
            return target
    if not allowed:
        raise InvalidOptionsError(
            "option output_url: outputs are off on this worker (ASR_OUTPUT_URL(S) unset)"
        )
    raise InvalidOptionsError(
        f"option output_url {value!r:.200} is not under ASR_OUTPUT_URL or ASR_OUTPUT_URLS"
    )


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def parse_options(
    raw: Mapping[str, Any], *, webhook_hosts: Collection[str] = (), output_prefixes: Collection[str] = ()
) -> TranscribeOptions:
    """Check a job's options and return them typed.

    Args:
        webhook_hosts: ``ASR_WEBHOOK_ALLOWED_HOSTS``; empty refuses a ``callback_url``.
        output_prefixes: ``ASR_OUTPUT_URL`` and ``ASR_OUTPUT_URLS``; empty refuses an ``output_url``.

    Raises:
        InvalidOptionsError: an option is unknown, ill-typed or out of range.
    """
    known = TranscribeOptions.__dataclass_fields__.keys()
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise InvalidOptionsError(
            f"unknown option(s): {', '.join(map(str, unknown))} (known: {', '.join(known)})"
        )
    language = _optional_text("language", raw.get("language"))
    if language is not None:
        language = language.lower()
        if language not in _languages():
            raise InvalidOptionsError(f"option language={language!r} is not a Whisper language code")
    task = raw.get("task", "transcribe")
    if task not in TASKS:
        raise InvalidOptionsError(f"option task must be one of {', '.join(TASKS)}, not {task!r}")
    beam_size = raw.get("beam_size")
    if beam_size is not None and (
        not isinstance(beam_size, int) or isinstance(beam_size, bool) or not 1 <= beam_size <= 64
    ):
        raise InvalidOptionsError(f"option beam_size must be a whole number from 1 to 64, not {beam_size!r}")
    return TranscribeOptions(
        language=language,
        task=task,
        beam_size=beam_size,
        vad_filter=_bool("vad_filter", raw.get("vad_filter", False)),
        word_timestamps=_bool("word_timestamps", raw.get("word_timestamps", False)),
        initial_prompt=_optional_text("initial_prompt", raw.get("initial_prompt")),
        hotwords=_optional_text("hotwords", raw.get("hotwords")),
        temperature=_temperature(raw.get("temperature")),
        channels=_channels(raw.get("channels")),
        fanout_seconds=_fanout_seconds(raw.get("fanout_seconds")),
        **_speakers(raw),
        callback_url=(
            None
            if raw.get("callback_url") is None
            else check_callback_url(raw["callback_url"], webhook_hosts)
        ),
        output_url=(
            None if raw.get("output_url") is None else check_output_url(raw["output_url"], output_prefixes)
        ),
        output_formats=_output_formats(raw.get("output_formats")),
    )
