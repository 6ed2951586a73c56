"""Reads environment variables for :class:`worker.pipeline.settings.Settings`, naming the
variable in every error (:class:`ConfigError`), so a worker with a typo stops at start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from worker.pipeline.errors import ConfigError, InvalidPathError
from worker.pipeline.urls import parse_prefix

__all__ = ["MIN_PIECE_SECONDS", "EnvReader"]

#: The shortest piece a long file is split into for the fleet: shorter ones cost more than they gain.
MIN_PIECE_SECONDS = 60.0

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class EnvReader:
    """Parses environment variables, naming the variable in every error."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def _raw(self, name: str) -> str | None:
        value = self._env.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def text(self, name: str, default: str) -> str:
        return self._raw(name) or default

    def boolean(self, name: str, default: bool) -> bool:
        raw = self._raw(name)
        if raw is None:
            return default
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ConfigError(f"{name}={raw!r} is not a boolean (use true or false)")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        raw = self._raw(name)
        if raw is None:
            return default
        if raw.lower() not in choices:
            raise ConfigError(f"{name}={raw!r} is not one of {', '.join(choices)}")
        return raw.lower()

    def integer(self, name: str, default: int, *, minimum: int) -> int:
        value = self.optional_int(name, minimum=minimum)
        return default if value is None else value

    def optional_int(self, name: str, *, minimum: int) -> int | None:
        raw = self._raw(name)
        if raw is None:
            return None
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a whole number") from None
        if value < minimum:
            raise ConfigError(f"{name}={raw!r} must be at least {minimum}")
        return value

    def number(self, name: str, default: float, *, minimum: float) -> float:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a number") from None
        if not value >= minimum:  # also refuses NaN
            raise ConfigError(f"{name}={raw!r} must be at least {minimum:g}")
        return value

    def whole(self, name: str, default: int) -> int:
        """A count or a number of seconds not below 0, written as any number (``2.5`` reads as 2)."""
        return int(self.number(name, default, minimum=0))

    def piece_length(self, name: str, default: float) -> float:
        """0 (off) or a length of audio of at least :data:`MIN_PIECE_SECONDS`."""
        value = self.number(name, default, minimum=0)
        if 0 < value < MIN_PIECE_SECONDS:
            raise ConfigError(f"{name}={value:g} must be 0 (off) or at least {MIN_PIECE_SECONDS:g} seconds")
        return value

    def hosts(self, name: str) -> tuple[str, ...]:
        """Comma-separated ``host`` or ``host:port`` entries (IPv6 as ``[::1]:8080``), lowercased."""
        raw = self._raw(name)
        if raw is None:
            return ()
        entries = []
        for part in (p.strip().lower() for p in raw.split(",")):
            if not part:
                continue
            try:
                parsed = urlsplit(f"//{part}")
                parsed.port  # noqa: B018  (raises ValueError for a bad port)
            except ValueError:
                raise ConfigError(f"{name}: {part!r} is not host or host:port") from None
            if not parsed.hostname or parsed.netloc != part or "@" in part:
                raise ConfigError(f"{name}: {part!r} is not host or host:port")
            entries.append(part)
        return tuple(entries)

    def secret(self, name: str, *, required_by: str) -> str:
        """A secret (never echoed in errors) that must be set when ``required_by`` is."""
        value = self._env.get(name, "")
        if not value.strip() and self._raw(required_by) is not None:
            raise ConfigError(
                f"{required_by} is set but {name} is empty: receivers could not verify webhooks"
            )
        return value

    def url_prefixes(self, name: str) -> tuple[str, ...]:
        """Comma-separated URL prefixes, in :func:`worker.pipeline.urls.parse_prefix`'s canonical form."""
        raw = self._raw(name)
        if raw is None:
            return ()
        try:
            return tuple(parse_prefix(part) for part in raw.split(",") if part.strip())
        except InvalidPathError as exc:
            raise ConfigError(f"{name}: {exc}") from None

    def output_prefix(self, name: str, value: str | None = None) -> str:
        """An ``s3://`` prefix (canonical) or an absolute directory; empty when unset."""
        raw = self._raw(name) if value is None else value.strip()
        if not raw:
            return ""
        if raw.lower().startswith("s3://"):
            try:
                return parse_prefix(raw if raw.endswith("/") else raw + "/")
            except InvalidPathError as exc:
                raise ConfigError(f"{name}: {exc}") from None
        if not os.path.isabs(raw):
            raise ConfigError(f"{name}: {raw!r} is neither an s3:// prefix nor an absolute directory")
        return os.path.normpath(raw)

    def paths(self, name: str) -> tuple[Path, ...]:
        raw = self._raw(name)
        if raw is None:
            return ()
        return tuple(Path(part).expanduser() for part in raw.split(os.pathsep) if part.strip())
