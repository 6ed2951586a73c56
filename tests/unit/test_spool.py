"""The spool's life cycle with real processes and real locks: held, kept, swept after a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, wait_until
from worker.pipeline import spool
from worker.pipeline.settings import Settings

URL = "s3://calls/a.wav?X-Amz-Signature=x"


def _settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"ASR_AUDIO_URLS": "s3://calls/", "ASR_SPOOL_DIR": str(tmp_path / "spool")})


def _holder(settings: Settings, ready: Path) -> subprocess.Popen[bytes]:
    """A process that spools ``URL`` (planted, not downloaded) and holds it until killed."""
    code = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from worker.pipeline import spool
        from worker.pipeline.settings import Settings
        spool_dir = {str(settings.spool_dir)!r}
        settings = Settings.from_env({{"ASR_AUDIO_URLS": "s3://calls/", "ASR_SPOOL_DIR": spool_dir}})
        audio, _, _ = spool._files(settings, spool._key({URL!r}))
        settings.spool_dir.mkdir(parents=True, exist_ok=True)
        audio.write_bytes(b"RIFF")
        with spool._spooled({URL!r}, settings):
            Path({str(ready)!r}).touch()
            time.sleep(60)
        """
    )
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)


def _wait_for(path: Path) -> None:
    wait_until(path.exists, 20, "the holder did not start")


def test_a_held_entry_stays_and_a_killed_holders_entry_is_swept(tmp_path):
    settings = _settings(tmp_path)
    holder = _holder(settings, tmp_path / "ready")
    try:
        _wait_for(tmp_path / "ready")
        spool.clean_spool(settings)
        assert any(p.suffix == ".audio" for p in settings.spool_dir.iterdir()), "held: kept"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    spool.clean_spool(settings)  # as a new child does at start
    assert list(settings.spool_dir.iterdir()) == []


def test_a_split_jobs_entry_outlives_its_readers_until_discarded(tmp_path):
    settings = _settings(tmp_path)
    audio, _, keep = spool._files(settings, spool._key(URL))
    settings.spool_dir.mkdir(parents=True)
    audio.write_bytes(b"RIFF")
    with spool._spooled(URL, settings) as path:
        assert path == audio
        spool.retain(URL, settings, 60)
    assert audio.exists() and keep.exists(), "kept for the pieces"
    spool.clean_spool(settings)
    assert audio.exists(), "a sweep leaves a kept entry"
    keep.write_text(str(time.time() - 1))
    spool.clean_spool(settings)
    assert not audio.exists(), "an expired keep is swept"
    audio.write_bytes(b"RIFF")
    spool.retain(URL, settings, 60)
    spool.discard(URL, settings)
    assert list(settings.spool_dir.iterdir()) == []


def test_paths_are_checked_as_before(tmp_path):
    settings = _settings(tmp_path)
    sample = tmp_path / "a.wav"
    sample.write_bytes(b"RIFF")
    with spool.open_audio(str(sample), settings) as path:
        assert path == sample.resolve()
    assert not settings.spool_dir.exists(), "a path job never touches the spool"


@pytest.mark.skipif(os.name != "posix", reason="flock")
def test_a_url_outside_the_prefixes_is_refused_before_the_spool(tmp_path):
    from worker.pipeline.errors import PathNotAllowedError

    with pytest.raises(PathNotAllowedError), spool.open_audio("s3://other/a.wav", _settings(tmp_path)):
        pass


def test_a_spool_others_may_write_to_is_refused(tmp_path):
    from worker.pipeline.errors import ConfigError

    settings = _settings(tmp_path)
    settings.spool_dir.mkdir()
    settings.spool_dir.chmod(0o777)  # as a shared /tmp directory would be
    with pytest.raises(ConfigError, match="ASR_SPOOL_DIR"):
        spool.clean_spool(settings)
    settings.spool_dir.chmod(0o700)
    spool.clean_spool(settings)
