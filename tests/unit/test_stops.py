"""A stop of the child (SystemExit from billiard's SIGTERM handler) is never turned into the job's
failure, even where a library caught it on the way (worker.tasks.base.stopped_by)."""

from __future__ import annotations

import pytest

from worker.tasks.base import AudioTask, stopped_by


def _import_interrupted_by(stop: BaseException) -> RuntimeError:
    """What faster-whisper raised when SIGTERM came during onnxruntime's import: a RuntimeError,
    caused by an ImportError, caused by the SystemExit."""
    try:
        try:
            try:
                raise stop
            except BaseException as exc:
                raise ImportError("initialization failed") from exc
        except ImportError as exc:
            raise RuntimeError("Applying the VAD filter requires the onnxruntime package") from exc
    except RuntimeError as exc:
        return exc


def test_a_stop_found_in_the_causes_is_returned() -> None:
    stop = SystemExit(-241)
    assert stopped_by(_import_interrupted_by(stop)) is stop
    interrupt = KeyboardInterrupt()
    assert stopped_by(_import_interrupted_by(interrupt)) is interrupt


def test_an_ordinary_error_is_not_a_stop() -> None:
    try:
        try:
            raise ValueError("bad input")
        except ValueError as exc:
            raise RuntimeError("while decoding") from exc
    except RuntimeError as exc:
        assert stopped_by(exc) is None


def test_a_cycle_in_the_causes_ends_the_search() -> None:
    first, second = RuntimeError("a"), RuntimeError("b")
    first.__context__, second.__context__ = second, first
    assert stopped_by(first) is None


def test_the_job_s_error_mapping_lets_the_stop_through() -> None:
    stop = SystemExit(-241)
    with pytest.raises(SystemExit) as caught, AudioTask.typed_errors(AudioTask()):
        raise _import_interrupted_by(stop)
    assert caught.value is stop
    with pytest.raises(RuntimeError, match="onnxruntime"), AudioTask.typed_errors(AudioTask()):
        raise RuntimeError("Applying the VAD filter requires the onnxruntime package")
