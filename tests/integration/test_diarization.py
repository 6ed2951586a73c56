"""Speaker labels through real workers (ASR_DIARIZATION=true): the real tiny.en, speaker encoder, audio.

Skipped, with the reason, where requirements-diarization.txt is not installed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest
import srt
import webvtt

from asr_protocol.formats import render
from evaluation.audio import concatenate
from producer import Client, TranscriptionFailed
from producer.local import LocalStack
from tests.helpers import SHARED_AUDIO, audio_file, worker_stack

pytestmark = [pytest.mark.integration, pytest.mark.diarization]

if importlib.util.find_spec("resemblyzer") is None or importlib.util.find_spec("torch") is None:
    pytest.skip(
        "speaker diarization is not installed: pip install -r requirements-diarization.txt",
        allow_module_level=True,
    )

FALCON = SHARED_AUDIO / "eval" / "falcon_3spk.wav"
#: falcon_3spk.rttm: one turn per speaker, in this order.
FALCON_TURNS = [(1.7, 3.9, "spk1"), (6.2, 11.1, "spk2"), (12.8, 18.0, "spk3")]


def _falcon() -> Path:
    if not FALCON.is_file():
        pytest.skip(f"{FALCON} is not available")
    return FALCON


def _truth(middle: float) -> str | None:
    return next((name for start, end, name in FALCON_TURNS if start <= middle <= end), None)


@pytest.fixture(scope="module")
def diarizing(tmp_path_factory: pytest.TempPathFactory, redis_server_binary: str) -> Iterator[LocalStack]:
    with worker_stack(tmp_path_factory, "diarizing", ASR_DIARIZATION="true") as running:
        yield running


@pytest.fixture()
def diar_client(diarizing: LocalStack) -> Iterator[Client]:
    with Client(diarizing.url, diarizing.url) as c:
        yield c


def test_three_speakers_are_found_and_labelled_in_every_format(diar_client: Client) -> None:
    result = diar_client.transcribe(_falcon(), diarize=True, word_timestamps=True, timeout=180)
    assert [s["speaker"] for s in result["speakers"]] == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_02"]
    assert all(s["seconds"] > 1.0 for s in result["speakers"])
    named = {}
    for segment in result["segments"]:
        assert {w["speaker"] for w in segment["words"]} == {segment["speaker"]}
        truth = _truth((segment["start"] + segment["end"]) / 2)
        if truth is not None:
            assert named.setdefault(truth, segment["speaker"]) == segment["speaker"]
    assert named == {"spk1": "SPEAKER_00", "spk2": "SPEAKER_01", "spk3": "SPEAKER_02"}
    assert result["timings"]["diarize"] > 0

    assert [
        c.content.split("]")[0] + "]" for c in srt.parse(render(result, "srt", max_line_width=10_000))
    ] == [f"[{s['speaker']}]" for s in result["segments"]]
    assert [c.voice for c in webvtt.from_string(render(result, "vtt", max_line_width=10_000))] == [
        s["speaker"] for s in result["segments"]
    ]
    assert all(line.startswith("SPEAKER_0") for line in render(result, "txt").splitlines())
    rttm = [line.split() for line in render(result, "rttm").splitlines()]
    assert {parts[7] for parts in rttm} == {"SPEAKER_00", "SPEAKER_01", "SPEAKER_02"}


def test_a_fanned_out_file_keeps_one_label_per_speaker(diar_client: Client, tmp_path: Path) -> None:
    copies, pause = 4, 1.0
    long = concatenate(_falcon(), copies, tmp_path / "falcon_x4.wav", pause=pause)
    result = diar_client.transcribe(long, diarize=True, fanout_seconds=60, timeout=300)
    assert len(result["pieces"]) >= 2
    assert "words" not in result["segments"][0]  # timed for the cuts, not asked for
    period = 18.6 + pause  # falcon_3spk.wav lasts 18.6 s
    named: dict[str, set[str]] = {}
    for segment in result["segments"]:
        truth = _truth(((segment["start"] + segment["end"]) / 2) % period)
        if truth is not None:
            named.setdefault(truth, set()).add(segment["speaker"])
    assert all(len(labels) == 1 for labels in named.values()), named
    assert len(named) == 3 and len({next(iter(v)) for v in named.values()}) == 3
    assert len(result["speakers"]) == 3


def test_each_channel_is_a_speaker(diar_client: Client) -> None:
    result = diar_client.transcribe(
        audio_file("stereo_diarization.wav"), channels="split", diarize=True, timeout=120
    )
    assert {(s["channel"], s["speaker"]) for s in result["segments"]} == {
        (0, "SPEAKER_00"),
        (1, "SPEAKER_01"),
    }
    assert [s["speaker"] for s in result["speakers"]] == ["SPEAKER_00", "SPEAKER_01"]


def test_a_worker_without_diarization_refuses_and_goes_on(client: Client) -> None:
    with pytest.raises(TranscriptionFailed) as caught:
        client.transcribe(audio_file("jfk.flac"), diarize=True, timeout=60)
    assert caught.value.error_type == "DiarizationUnavailableError"
    assert "ASR_DIARIZATION" in caught.value.message
    assert client.transcribe(audio_file("jfk.flac"), timeout=120)["text"]


def test_a_clip_job_that_asks_for_speakers_is_labelled(diar_client: Client) -> None:
    result = diar_client.submit(_falcon(), batch=True, diarize=True).result(timeout=180)
    assert [s["speaker"] for s in result["speakers"]] == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_02"]
    assert all("speaker" in segment for segment in result["segments"])


def test_the_http_api_answers_diarized_json_through_the_openai_sdk(
    diarizing: LocalStack, tmp_path: Path
) -> None:
    import openai

    from producer.api.local import ApiServer, server_env

    with ApiServer(diarizing.url, tmp_path / "api.log", **server_env(tmp_path, keys="k")) as api:
        sdk = openai.OpenAI(base_url=f"{api.url}/v1", api_key="k", max_retries=0, timeout=180)
        with open(_falcon(), "rb") as audio:
            answer = sdk.audio.transcriptions.create(
                file=audio, model="whisper-1", response_format="diarized_json"
            )
    assert {segment.speaker for segment in answer.segments} == {"SPEAKER_00", "SPEAKER_01", "SPEAKER_02"}
    for segment in answer.segments:
        assert _truth((segment.start + segment.end) / 2) is not None, "each segment inside a true turn"
