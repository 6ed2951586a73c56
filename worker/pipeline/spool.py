"""The spool: URL audio downloaded once per node, held while jobs read it, removed when they end.

An entry in ``ASR_SPOOL_DIR`` is named after a hash of the job's URL:
``<key>.audio`` (the file), ``<key>.lock`` (held shared by every job reading it,
exclusive while it is downloaded) and, for a job split across the fleet,
``<key>.keep`` (until when its pieces may still need it). Locks are ``flock``s,
so the kernel drops a killed child's: its entry becomes unheld and the next
sweep (at every child's start, and at every download) removes it.

:func:`open_audio` is the one way tasks reach their audio, path or URL.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from worker.pipeline.audio import check_audio_path
from worker.pipeline.errors import ASRError, ConfigError, EmptyAudioError, TransientError
from worker.pipeline.fetch import download
from worker.pipeline.settings import Settings
from worker.pipeline.urls import check_allowed, is_url, mask_url

__all__ = ["clean_spool", "discard", "open_audio", "retain"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def open_audio(audio_path: Any, settings: Settings) -> Iterator[Path]:
    """The local file of a job's audio: a checked path, or a URL's spooled download.

    A URL job's errors name the URL (masked), not the spool file.

    Raises:
        InputError: the path or URL is bad, not allowed or not there.
        TransientError: the store failed; a retry may succeed.
    """
    if not is_url(audio_path):
        yield check_audio_path(audio_path, settings)
        return
    url = audio_path.strip()
    check_allowed(url, settings.audio_urls)
    with _spooled(url, settings) as path:
        try:
            yield path
        except ASRError as exc:
            message = str(exc).replace(str(path), mask_url(url))
            if message == str(exc):
                raise
            raise type(exc)(message) from None


def _key(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:40]


def _files(settings: Settings, key: str) -> tuple[Path, Path, Path]:
    """The entry's audio, lock and keep files."""
    spool = settings.spool_dir
    return spool / f"{key}.audio", spool / f"{key}.lock", spool / f"{key}.keep"


def _lock(path: Path, mode: int) -> int | None:
    """An fd of ``path`` locked in ``mode``; ``None`` if ``LOCK_NB`` was asked and it is held.

    A lock file can be removed (by a sweep) while another process waits on it:
    the lock then guards nothing, so it is taken again on the file now there.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, mode)
        except BlockingIOError:
            os.close(fd)
            return None
        if _still_there(fd, path):
            return fd
        os.close(fd)


def _still_there(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _ensure_dir(settings: Settings) -> None:
    """Create the spool private to this user; refuse one that others could plant files in.

    Raises:
        ConfigError: the directory belongs to another user or others may write to it.
    """
    spool = settings.spool_dir
    spool.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = spool.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise ConfigError(
            f"ASR_SPOOL_DIR={spool} must belong to this user and not be writable by others "
            "(a shared /tmp directory could be planted with links)"
        )


@contextlib.contextmanager
def _spooled(url: str, settings: Settings) -> Iterator[Path]:
    _ensure_dir(settings)
    key = _key(url)
    audio, lock, _ = _files(settings, key)
    fd = None
    try:
        fd = _hold(url, audio, lock, settings)
        yield audio
    finally:
        if fd is not None:
            os.close(fd)
        _collect(settings, key)


def _hold(url: str, audio: Path, lock: Path, settings: Settings) -> int:
    """A shared lock on the entry of ``url``, downloading it first unless this node has it."""
    for _ in range(5):
        fd = _lock(lock, fcntl.LOCK_SH)
        assert fd is not None
        if audio.exists():
            log.info("%s: spooled copy reused", mask_url(url))
            return fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # not atomic: what was checked is checked again
            if not audio.exists():
                _fetch(url, audio, settings)
            fcntl.flock(fd, fcntl.LOCK_SH)
        except BaseException:
            os.close(fd)
            raise
        if _still_there(fd, lock) and audio.exists():
            return fd
        os.close(fd)
    raise TransientError(f"{mask_url(url)}: the spool entry kept being removed; will retry")


def _fetch(url: str, audio: Path, settings: Settings) -> None:
    _sweep(settings)
    part = audio.with_name(f"{audio.name}.{os.getpid()}.part")
    started = time.perf_counter()
    try:
        size = download(url, part, settings)
        if size == 0:
            raise EmptyAudioError(f"empty object (0 bytes): {mask_url(url)}")
        os.replace(part, audio)
    finally:
        part.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    log.info("%s: fetched %d bytes in %.2f s (%.1f MB/s)", mask_url(url), size, seconds, size / 1e6 / seconds)


def retain(url: Any, settings: Settings, seconds: float) -> None:
    """Keep a URL's entry on this node for ``seconds`` after its last reader: a split job's pieces need it."""
    if not is_url(url):
        return
    _, _, keep = _files(settings, _key(url.strip()))
    keep.write_text(str(time.time() + seconds))


def discard(url: Any, settings: Settings) -> None:
    """Drop a URL's entry on this node once nobody reads it: its split job has ended."""
    if not is_url(url):
        return
    key = _key(url.strip())
    _files(settings, key)[2].unlink(missing_ok=True)
    _collect(settings, key)


def _kept(keep: Path) -> bool:
    try:
        return float(keep.read_text() or 0) > time.time()
    except (FileNotFoundError, ValueError):
        return False


def _collect(settings: Settings, key: str) -> None:
    """Remove an entry nobody holds, unless a split job keeps it; a dead download's part always."""
    audio, lock, keep = _files(settings, key)
    fd = _lock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    if fd is None:
        return  # a job reads it, or downloads it
    try:
        for part in settings.spool_dir.glob(f"{key}.audio.*.part"):
            part.unlink(missing_ok=True)
        if _kept(keep):
            return
        audio.unlink(missing_ok=True)
        keep.unlink(missing_ok=True)
        lock.unlink(missing_ok=True)
    finally:
        os.close(fd)


def _sweep(settings: Settings) -> int:
    """Collect every entry of the spool; returns how many files were there before."""
    try:
        names = os.listdir(settings.spool_dir)
    except FileNotFoundError:
        return 0
    for key in sorted({name.split(".", 1)[0] for name in names}):
        _collect(settings, key)
    return len(names)


def clean_spool(settings: Settings) -> None:
    """Remove what killed children left in the spool (called as each child starts)."""
    if not settings.audio_urls:
        return
    _ensure_dir(settings)
    before = _sweep(settings)
    after = len(os.listdir(settings.spool_dir))
    if before > after:
        log.info("spool %s: %d leftover file(s) removed", settings.spool_dir, before - after)
