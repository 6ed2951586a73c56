"""The one INFO line per finished job: its shape (seconds, segments, gaps), never its text."""

from __future__ import annotations

import logging

from worker.runtime.privacy import log_summary


def test_a_piece_of_a_split_job_logs_its_own_seconds(caplog):
    piece = {"index": 2, "start": 95.1, "end": 141.15, "segments": [{"text": "private words"}] * 11}
    with caplog.at_level(logging.INFO, logger="worker.jobs"):
        log_summary("id-1", "asr.transcribe_piece", piece)
        log_summary("id-2", "asr.transcribe", {"duration": 11.0, "segments": [], "gaps": [{}]})
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0].startswith("asr.transcribe_piece[id-1]: 46.1 s of audio, 11 segments, 0 gaps")
    assert lines[1].startswith("asr.transcribe[id-2]: 11.0 s of audio, 0 segments, 1 gaps")
    assert "private" not in " ".join(lines)
