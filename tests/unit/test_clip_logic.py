"""Which clip jobs may share a batch, and the settings that shape the batches (pure logic)."""

from __future__ import annotations

import pytest

from worker.pipeline.errors import ConfigError
from worker.pipeline.options import TranscribeOptions
from worker.pipeline.settings import Settings
from worker.pipeline.transcription import clip_batchable


@pytest.mark.parametrize(
    ("seconds", "options", "multilingual", "batchable"),
    [
        (11.0, TranscribeOptions(), False, True),
        (30.0, TranscribeOptions(), False, True),
        (30.1, TranscribeOptions(), False, False),  # more than one window
        (0.0, TranscribeOptions(), False, False),
        (11.0, TranscribeOptions(temperature=0.0), False, True),
        (11.0, TranscribeOptions(temperature=(0.0, 0.2)), False, False),  # a ladder: sequential only
        (11.0, TranscribeOptions(vad_filter=True), False, False),
        (11.0, TranscribeOptions(initial_prompt="Kennedy"), False, False),
        (11.0, TranscribeOptions(hotwords="Kennedy"), False, False),
        (11.0, TranscribeOptions(word_timestamps=True), False, False),
        (11.0, TranscribeOptions(channels="split"), False, False),
        (11.0, TranscribeOptions(), True, False),  # a batch has one language: detection is per clip
        (11.0, TranscribeOptions(language="de"), True, True),
        (11.0, TranscribeOptions(beam_size=1, callback_url="http://x/"), False, True),
    ],
)
def test_clip_batchable(seconds, options, multilingual, batchable):
    assert clip_batchable(seconds, options, multilingual) is batchable


def test_clip_settings_have_defaults_and_are_checked():
    default = Settings.from_env({})
    assert (default.clip_batch, default.clip_wait) == (8, 0.1)
    tuned = Settings.from_env({"ASR_CLIP_BATCH": "16", "ASR_CLIP_WAIT": "0.5"})
    assert (tuned.clip_batch, tuned.clip_wait) == (16, 0.5)
    for name, value in (("ASR_CLIP_BATCH", "0"), ("ASR_CLIP_BATCH", "x"), ("ASR_CLIP_WAIT", "0")):
        with pytest.raises(ConfigError, match=name):
            Settings.from_env({name: value})
