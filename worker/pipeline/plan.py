"""How a job runs, decided in one place: :func:`plan_job`.

A job is transcribed whole in the child that took it, per channel, or split
into pieces across the fleet; long audio is read by the batched decoder or the
sequential one, and a child holds at most ``chunk_seconds`` of it at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.pipeline.options import TranscribeOptions
from worker.pipeline.speech import WINDOW_SECONDS

__all__ = [
    "BATCHED",
    "CHANNELS",
    "FANOUT",
    "SEQUENTIAL",
    "WHOLE",
    "Plan",
    "plan_job",
    "uses_batched_pipeline",
]

#: Routes: in this child, in this child channel by channel, or as pieces across the fleet.
WHOLE, CHANNELS, FANOUT = "whole", "channels", "fanout"
#: The decoder paths a result can name.
SEQUENTIAL, BATCHED = "sequential", "batched"


@dataclass(frozen=True)
class Plan:
    """How one job runs."""

    route: str
    #: The decoder of its audio (of each piece, for a fan-out).
    decoder: str
    #: FANOUT: the longest piece, in seconds.
    piece_seconds: float = 0.0
    #: The longest stretch a child decodes at once (0: all of it).
    chunk_seconds: float = 0.0


def uses_batched_pipeline(seconds: float, options: TranscribeOptions, batch_size: int) -> bool:
    """Whether audio of ``seconds`` goes through ``BatchedInferencePipeline``.

    Only audio longer than one window gains from it, and only a batch size over
    1 batches anything. A job that asks for a temperature ladder keeps the
    sequential decoder, the only one that falls back along it.
    """
    return batch_size > 1 and seconds > WINDOW_SECONDS and not isinstance(options.temperature, tuple)


def plan_job(
    seconds: float,
    options: TranscribeOptions,
    *,
    fanout_seconds: float,
    chunk_seconds: float,
    batch_size: int,
    can_split: bool = True,
) -> Plan:
    """How a job whose audio lasts ``seconds`` (each channel as long) runs.

    Args:
        fanout_seconds: the worker's ``ASR_FANOUT_SECONDS``; the job's ``fanout_seconds`` option wins.
        can_split: False where the job cannot become a chord (called without a task id).

    Per-channel jobs stay whole: their channels are transcribed and merged in one child.
    """
    length = fanout_seconds if options.fanout_seconds is None else options.fanout_seconds
    if options.channels is not None:
        return Plan(CHANNELS, _decoder(seconds, options, batch_size), chunk_seconds=chunk_seconds)
    if can_split and length and seconds > length:
        return Plan(FANOUT, _decoder(min(seconds, length), options, batch_size), piece_seconds=length)
    return Plan(WHOLE, _decoder(seconds, options, batch_size), chunk_seconds=chunk_seconds)


def _decoder(seconds: float, options: TranscribeOptions, batch_size: int) -> str:
    return BATCHED if uses_batched_pipeline(seconds, options, batch_size) else SEQUENTIAL
