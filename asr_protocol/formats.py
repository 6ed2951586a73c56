"""Render a transcription result as json, txt, srt, vtt, tsv or rttm.

The input is the plain dict the worker stores (``text``, ``segments`` with optional
``words``). Subtitle options mirror openai-whisper's writers: ``max_line_width``,
``max_line_count`` and ``highlight_words``, plus ``word_level`` for one cue per word.
Segments with a ``speaker`` (``diarize=true``) are labelled: ``SPEAKER_00: text`` in txt,
``[SPEAKER_00] text`` in srt, a ``<v SPEAKER_00>`` voice span in vtt; ``rttm`` writes the
speaker turns (NIST RTTM, as pyannote reads it).
"""

from __future__ import annotations

import html
import itertools
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["FORMATS", "render", "write"]

log = logging.getLogger(__name__)

#: Subtitle lines and cues as common practice sets them (Netflix, BBC: about 42
#: characters a line, two lines a cue, at most 7 s on screen) where the caller names no other.
SUBTITLE_LINE_WIDTH, SUBTITLE_LINE_COUNT, SUBTITLE_CUE_SECONDS = 42, 2, 7.0
#: The formats :func:`render` and :func:`write` accept.
FORMATS = ("json", "txt", "srt", "vtt", "tsv", "rttm")

# Tabs and newlines would break tsv rows and end srt/vtt cues early.
_BREAKS = re.compile(r"[\t\r\n]+")
_NO_WORDS = "result has no word timestamps; transcribe with word_timestamps=True"
_NO_SPEAKERS = "result has no speaker labels; transcribe with diarize=True"


class _Token(NamedTuple):
    """One word of a segment, with its leading whitespace."""

    text: str
    start: float
    end: float


class _Cue(NamedTuple):
    start: float
    end: float
    text: str


class _Layout(NamedTuple):
    """How a segment becomes cues: line width and count, longest cue, word options, escaping."""

    width: int | None
    lines: int | None
    seconds: float | None
    highlight: bool
    word_level: bool
    escape: Callable[[str], str]


def render(
    result: dict[str, Any],
    fmt: str,
    *,
    max_line_width: int | None = None,
    max_line_count: int | None = None,
    highlight_words: bool = False,
    word_level: bool = False,
) -> str:
    """Return ``result`` rendered as ``fmt``.

    Wrapping, highlighting and word-level cues only affect srt and vtt. Lines break at
    word boundaries (42 characters, 2 lines and at most 7 s a cue unless given); a segment
    needing more lines or time is split into several cues, timed by its word timestamps
    where it has them, else in proportion to characters. No cue ends past the audio's ``duration``. Each
    cue of a speaker's (``diarize``) or a channel's segment carries its label.

    Raises:
        ValueError: unknown format, bad option, or word options on a result without words.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    for name, value in (("max_line_width", max_line_width), ("max_line_count", max_line_count)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if highlight_words and word_level:
        raise ValueError("highlight_words and word_level cannot be combined")
    segments = result.get("segments", [])
    if (highlight_words or word_level) and segments and not any("words" in s for s in segments):
        raise ValueError(_NO_WORDS)

    if fmt == "json":
        return json.dumps(result, ensure_ascii=False, indent=2) + "\n"
    if fmt == "rttm":
        return _rttm(result, segments)
    if fmt == "txt":
        return "".join(f"{_prefix(s)}{_one_line(s['text'])}\n" for s in segments if s["text"].strip())
    if fmt == "tsv":
        rows = (f"{_ms(s['start'])}\t{_ms(s['end'])}\t{_prefix(s)}{_one_line(s['text'])}\n" for s in segments)
        return "start\tend\ttext\n" + "".join(rows)

    cues = _cues(result, fmt, max_line_width, max_line_count, highlight_words, word_level)
    if fmt == "srt":
        return "".join(
            f"{i}\n{_timestamp(c.start, ',')} --> {_timestamp(c.end, ',')}\n{c.text}\n\n"
            for i, c in enumerate(cues, start=1)
        )
    return "WEBVTT\n\n" + "".join(
        f"{_timestamp(c.start, '.')} --> {_timestamp(c.end, '.')}\n{c.text}\n\n" for c in cues
    )


def _cues(
    result: dict[str, Any],
    fmt: str,
    width: int | None,
    count: int | None,
    highlight: bool,
    word_level: bool,
) -> list[_Cue]:
    """The srt/vtt cues of ``result``: wrapped, labelled, within the audio's duration."""
    escape = _escape_vtt if fmt == "vtt" else _same
    seconds = None
    if width is None and count is None and not word_level:
        width, count, seconds = SUBTITLE_LINE_WIDTH, SUBTITLE_LINE_COUNT, SUBTITLE_CUE_SECONDS
    layout = _Layout(width, count, seconds, highlight, word_level, escape)
    return [
        _voiced(_within(cue, result.get("duration")), _label(segment), fmt)
        for segment in result.get("segments", [])
        for cue in _segment_cues(segment, layout)
        if cue.text
    ]


def write(
    result: dict[str, Any],
    fmt: str,
    out_dir: str | os.PathLike[str],
    *,
    name: str | None = None,
    **render_options: Any,
) -> Path:
    """Write ``result`` as ``out_dir/<name>.<fmt>`` (UTF-8) and return the path.

    ``name`` defaults to the stem of ``result["audio_path"]``; ``out_dir`` is created.
    """
    text = render(result, fmt, **render_options)
    path = Path(out_dir) / f"{name or Path(result['audio_path']).stem}.{fmt}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    log.info("wrote %s (%d characters)", path, len(text))
    return path


def _ms(seconds: float) -> int:
    """Round seconds to whole milliseconds, halves up (``round`` would round half to even)."""
    return max(0, math.floor(seconds * 1000 + 0.5))


def _timestamp(seconds: float, sep: str) -> str:
    """``HH:MM:SS<sep>mmm``; hours grow past two digits rather than wrapping."""
    hours, rest = divmod(_ms(seconds), 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{millis:03d}"


def _clamp(value: float, lo: float, hi: float) -> float:
    return min(max(value, lo), hi)


def _one_line(text: str) -> str:
    return _BREAKS.sub(" ", text).strip()


def _prefix(segment: dict[str, Any]) -> str:
    if segment.get("speaker") is not None:
        return f"{segment['speaker']}: "
    return f"[{segment['channel']}] " if segment.get("channel") is not None else ""


def _label(segment: dict[str, Any]) -> str | None:
    """Who speaks a segment: its speaker (``diarize``), else its channel (``channels``)."""
    for key in ("speaker", "channel"):
        if segment.get(key) is not None:
            return str(segment[key])
    return None


def _within(cue: _Cue, duration: Any) -> _Cue:
    """``cue`` ending no later than the audio does (Whisper may stamp past the end)."""
    if not isinstance(duration, (int, float)) or cue.end <= duration:
        return cue
    return cue._replace(start=min(cue.start, duration), end=float(duration))


def _voiced(cue: _Cue, speaker: str | None, fmt: str) -> _Cue:
    """``cue`` labelled with its speaker: ``[SPEAKER_00]`` in srt, a ``<v>`` voice span in vtt."""
    if speaker is None:
        return cue
    if fmt == "vtt":
        return cue._replace(text=f"<v {_escape_vtt(speaker)}>{cue.text}</v>")
    return cue._replace(text=f"[{speaker}] {cue.text}")


def _rttm(result: dict[str, Any], segments: list[dict[str, Any]]) -> str:
    """One RTTM ``SPEAKER`` line per run of touching segments of one speaker."""
    if segments and not any("speaker" in s for s in segments):
        raise ValueError(_NO_SPEAKERS)
    uri = re.sub(r"\s+", "_", Path(str(result.get("audio_path") or "audio")).stem) or "audio"
    turns: list[list[Any]] = []
    for s in segments:
        if "speaker" not in s or s["end"] <= s["start"]:
            continue
        if turns and turns[-1][2] == s["speaker"] and s["start"] <= turns[-1][1] + 1e-6:
            turns[-1][1] = max(turns[-1][1], s["end"])
        else:
            turns.append([s["start"], s["end"], s["speaker"]])
    return "".join(
        f"SPEAKER {uri} 1 {start:.3f} {end - start:.3f} <NA> <NA> {speaker} <NA> <NA>\n"
        for start, end, speaker in turns
    )


def _same(text: str) -> str:
    return text


def _escape_vtt(text: str) -> str:
    # WebVTT cue text is markup: a bare "<" or "&" (or "-->") would be misread.
    return html.escape(text, quote=False)


def _tokens(segment: dict[str, Any]) -> list[_Token]:
    """The segment's words, timed by word timestamps or else in proportion to characters."""
    lo, hi = segment["start"], segment["end"]
    if segment.get("words"):
        # Clamped: word times can stray a little outside their segment.
        return [
            _Token(_BREAKS.sub(" ", w["word"]), _clamp(w["start"], lo, hi), _clamp(w["end"], lo, hi))
            for w in segment["words"]
        ]
    texts = re.findall(r"\s*\S+", _one_line(segment["text"]))
    per_char = (hi - lo) / (sum(map(len, texts)) or 1)
    tokens, done = [], 0
    for text in texts:
        first = done + len(text) - len(text.lstrip())  # a word starts after its leading space
        tokens.append(_Token(text, lo + per_char * first, lo + per_char * (done + len(text))))
        done += len(text)
    return tokens


def _join(tokens: list[_Token], escape: Callable[[str], str], underline: int | None = None) -> str:
    """Join tokens into one line, wrapping token ``underline`` (an index) in ``<u>``."""
    parts = []
    for i, token in enumerate(tokens):
        word = token.text.lstrip()
        lead = token.text[: len(token.text) - len(word)]
        parts.append(f"{lead}<u>{escape(word)}</u>" if i == underline else lead + escape(word))
    return "".join(parts).strip()


def _wrap(tokens: list[_Token], width: int | None) -> list[list[_Token]]:
    """Greedily fill lines of at most ``width`` characters; a longer word gets its own line."""
    lines: list[list[_Token]] = []
    line: list[_Token] = []
    for token in tokens:
        if line and width is not None and len(_join([*line, token], _same)) > width:
            lines.append(line)
            line = []
        line.append(token)
    return [*lines, line] if line else lines


def _segment_cues(segment: dict[str, Any], layout: _Layout) -> Iterator[_Cue]:
    start, end = segment["start"], segment["end"]
    use_words = bool(segment.get("words"))
    highlight, escape = layout.highlight, layout.escape
    if layout.word_level:
        yield from (_Cue(w.start, w.end, escape(w.text.strip())) for w in _tokens(segment) if use_words)
        return
    if layout.width is None and not (highlight and use_words):
        yield _Cue(start, end, escape(_one_line(segment["text"])))
        return

    chunks = [
        chunk
        for stretch in _by_time(_tokens(segment), layout.seconds)
        for chunk in _by_count(_wrap(stretch, layout.width), layout.lines)
    ]
    # Cues tile the segment, each split where the next chunk's first word starts; timed words
    # start the first cue at the first word, and no cue outlasts ``layout.seconds``.
    bounds = [_clamp(chunks[0][0][0].start, start, end) if use_words else start]
    for chunk in chunks[1:]:
        bounds.append(_clamp(chunk[0][0].start, bounds[-1], end))
    bounds.append(end)
    spans = [
        (lo, hi if layout.seconds is None else min(hi, lo + layout.seconds))
        for lo, hi in itertools.pairwise(bounds)
    ]

    for chunk, (lo, hi) in zip(chunks, spans, strict=True):
        if not (highlight and use_words):
            yield _Cue(lo, hi, _render_lines(chunk, escape, None))
            continue
        # Like openai-whisper: plain text in the gaps, the spoken word underlined.
        words = [t for line in chunk for t in line]
        last = lo
        for k, word in enumerate(words):
            w_start, w_end = _clamp(word.start, last, hi), _clamp(word.end, last, hi)
            if w_start > last:
                yield _Cue(last, w_start, _render_lines(chunk, escape, None))
            yield _Cue(w_start, w_end, _render_lines(chunk, escape, k))
            last = w_end
        if last < hi:
            yield _Cue(last, hi, _render_lines(chunk, escape, None))


def _by_time(tokens: list[_Token], seconds: float | None) -> list[list[_Token]]:
    """``tokens`` in runs that each last at most ``seconds`` (a longer word alone); None keeps one run."""
    runs: list[list[_Token]] = []
    for token in tokens:
        if runs and (seconds is None or token.end - runs[-1][0].start <= seconds):
            runs[-1].append(token)
        else:
            runs.append([token])
    return runs


def _by_count(lines: list[list[_Token]], count: int | None) -> list[list[list[_Token]]]:
    """``lines`` in groups of ``count`` (None: one group)."""
    return [lines[i : i + count] for i in range(0, len(lines), count)] if count else [lines]


def _render_lines(chunk: list[list[_Token]], escape: Callable[[str], str], k: int | None) -> str:
    """Render a chunk's lines, underlining its ``k``-th word (counted across lines)."""
    out, seen = [], 0
    for line in chunk:
        # An index outside this line (even a negative one) underlines nothing.
        out.append(_join(line, escape, None if k is None else k - seen))
        seen += len(line)
    return "\n".join(out)
