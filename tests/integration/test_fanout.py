"""A long file split across the fleet: a chord of pieces, one merged result under the job's id."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from evaluation.workloads import referenced_mix
from producer import TranscriptionFailed
from tests.helpers import audio_file, normalise, wait_until, word_error_rate
from worker.pipeline.audio import decode

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mix(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """About 4 minutes of real speech with known words (jfk.flac, both stereo_diarization.wav channels)."""
    path = tmp_path_factory.mktemp("fanout") / "mix.wav"
    return path, referenced_mix(240, path, seed=7)


def test_a_long_file_is_split_across_both_children_and_merged_under_its_id(client, mix):
    path, reference = mix
    whole = client.transcribe(path, fanout_seconds=0, timeout=300)
    job = client.submit(path, fanout_seconds=60)
    seen = []
    while not job.ready():
        if progress := job.progress:  # one read: the job may end between two
            seen.append(progress)
        time.sleep(0.05)
    merged = job.result(timeout=1)

    assert "pieces" not in whole
    pieces = merged["pieces"]
    assert len(pieces) == 5  # 246 s in pieces of at most 60 s, each cut in a pause
    assert [p["index"] for p in pieces] == list(range(5))
    assert pieces[0]["start"] == 0 and pieces[-1]["end"] == pytest.approx(merged["duration"], abs=0.01)
    assert all(a["end"] == b["start"] for a, b in itertools.pairwise(pieces)), "no gap, no overlap"
    assert len({p["worker"]["pid"] for p in pieces}) == 2, "both children took pieces"
    # Progress over the chunks: the pieces' seconds add up, and pieces_done counts up.
    assert seen and all(s["pieces"] == 5 for s in seen if "pieces" in s)
    done = [s["seconds_done"] for s in seen]
    assert done == sorted(done) and max(s.get("pieces_done", 0) for s in seen) >= 3

    # Same words as the unsplit transcript: WER within 1 point, nothing lost or doubled at the cuts.
    assert merged["duration"] == whole["duration"]
    assert word_error_rate(reference, merged["text"]) <= word_error_rate(reference, whole["text"]) + 0.01
    audio = decode(path)
    for piece in pieces[1:]:
        cut = round(piece["start"] * 16000)
        assert float(np.abs(audio[cut - 800 : cut + 800]).max()) < 1e-3, "each cut falls in a pause"
    for segment in merged["segments"]:
        piece = next(p for p in pieces if p["start"] <= segment["start"] < p["end"])
        assert segment["end"] <= piece["end"] + 0.01, "no segment spans a cut, so none is heard twice"
    words, whole_words = len(normalise(merged["text"]).split()), len(normalise(whole["text"]).split())
    assert whole_words - 3 <= words <= len(normalise(reference).split()) + 3, (words, whole_words)
    starts = [s["start"] for s in merged["segments"]]
    assert starts == sorted(starts) and merged["segments"][-1]["end"] > 230
    assert [s["id"] for s in merged["segments"]] == list(range(1, len(merged["segments"]) + 1))
    assert merged["text"] == " ".join(s["text"] for s in merged["segments"] if s["text"])
    assert set(whole) <= set(merged), "a merged result has every field of an unsplit one"


def test_word_timings_of_the_pieces_are_in_the_whole_file(client, mix):
    path, _ = mix
    result = client.transcribe(path, fanout_seconds=120, word_timestamps=True, timeout=300)
    assert len(result["pieces"]) == 3
    second = result["pieces"][1]
    inside = [s for s in result["segments"] if second["start"] <= s["start"] < second["end"]]
    assert inside, "the second piece's segments sit in its stretch of the file"
    for segment in result["segments"]:
        assert all(
            segment["start"] - 0.05 <= w["start"] <= w["end"] <= segment["end"] + 0.05
            for w in segment["words"]
        )


def test_a_piece_that_fails_fails_the_job_with_its_typed_error_and_the_worker_goes_on(client, mix, tmp_path):
    path, _ = mix
    doomed = tmp_path / "doomed.wav"
    doomed.write_bytes(path.read_bytes())
    job = client.submit(doomed, fanout_seconds=60)
    # Once the job has been split, the file goes away: the pieces not yet started cannot read it.
    wait_until(lambda: (job.progress or {}).get("pieces"), 60, "the job was never split", interval=0.02)
    doomed.unlink()
    with pytest.raises(TranscriptionFailed) as failed:
        job.result(timeout=300)
    assert failed.value.error_type == "AudioNotFoundError"
    assert "piece" in failed.value.message and "of 5" in failed.value.message
    assert client.transcribe(audio_file("jfk.flac"), timeout=120)["text"]


def test_fanout_seconds_is_checked(client, mix):
    path, _ = mix
    with pytest.raises(TranscriptionFailed) as failed:
        client.transcribe(path, fanout_seconds=5, timeout=60)
    assert failed.value.error_type == "InvalidOptionsError"
    assert "fanout_seconds" in failed.value.message


def test_pieces_publishing_at_once_never_move_the_jobs_progress_back(stack):
    # Two children report their pieces' seconds at the same moment, again and again; a reader
    # sees the job's stored progress only grow.
    from celery import Celery

    from worker.tasks.fanout import _piece_publisher

    app = Celery(broker=stack.url, backend=stack.url)
    job_id = f"progress-{uuid.uuid4()}"
    steps = 150
    publishers = [_piece_publisher(app.backend, job_id, index, 2, 2.0 * steps) for index in range(2)]
    assert all(publishers)
    seen: list[float] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            meta = app.backend.get_task_meta(job_id, cache=False).get("result") or {}
            if "seconds_done" in meta:
                seen.append(meta["seconds_done"])

    def report(publish) -> None:
        for done in range(1, steps + 1):
            publish(float(done), float(steps))

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=report, args=(publish,)) for publish in publishers]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    reader.join()
    final = app.backend.get_task_meta(job_id, cache=False)["result"]
    assert (final["seconds_done"], final["pieces_done"]) == (2.0 * steps, 2)
    assert len(seen) > 10 and seen == sorted(seen), "progress went back"
