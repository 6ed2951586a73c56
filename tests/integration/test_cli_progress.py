"""--wait draws a progress bar per job on a terminal, driven by the PROGRESS state."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

import pytest

from evaluation.audio import concatenate
from producer.local import LocalStack
from tests.helpers import ROOT, audio_file, ctrl_c_as_on_a_terminal, wait_until

pytestmark = pytest.mark.integration


def cli_on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    """``python -m producer ARGS``, stderr on a pseudo-terminal: the process and the reading end."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "producer", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=follower,
        preexec_fn=ctrl_c_as_on_a_terminal,
    )
    os.close(follower)
    return process, leader


def test_progress_bars_are_drawn_on_a_terminal(stack: LocalStack, tmp_path):
    # 22 x jfk.flac with 1 s pauses (264 s of speech) split into 60 s pieces: 5 pieces on 2
    # children, so progress stops in between (the batched pipeline moves a batch at a time).
    long_file = concatenate(audio_file("jfk.flac"), 22, tmp_path / "long.wav")
    env = {**os.environ, "REDIS_URL": stack.url, "COLUMNS": "120"}
    args = [str(long_file), str(audio_file("jfk.flac")), "--wait", "--fanout-seconds", "60"]
    process, leader = cli_on_a_terminal(args, env)
    screen = b""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the CLI has exited
                break
            screen += chunk
        elif process.poll() is not None:
            break
    stdout = process.communicate(timeout=60)[0].decode()
    os.close(leader)
    text = screen.decode(errors="replace")
    assert process.returncode == 0, text
    assert "long.wav" in text and "jfk.flac" in text, "one bar per job, named by its file"
    percents = {float(p) for p in re.findall(r"(\d+\.\d)%", text)}
    assert 100.0 in percents and any(0.0 < p < 100.0 for p in percents), sorted(percents)
    assert "done" in text
    assert "country" in stdout


def test_ctrl_c_while_waiting_lists_the_jobs_that_go_on(stack: LocalStack, tmp_path):
    # 30 x jfk.flac (330 s of speech) in one child: seconds of decoding in 3 batches, so it is
    # still running when the interrupt comes.
    long_file = concatenate(audio_file("jfk.flac"), 30, tmp_path / "long.wav")
    env = {**os.environ, "REDIS_URL": stack.url, "COLUMNS": "120"}
    args = [str(long_file), "--wait", "--fanout-seconds", "0", "--temperature", "0"]
    process, leader = cli_on_a_terminal(args, env)
    screen = bytearray()

    def running() -> bool:
        while select.select([leader], [], [], 0)[0]:  # keep the terminal drained meanwhile
            screen.extend(os.read(leader, 65536))
        # The bar's state, drawn as it changes. Asking the workers (inspect) took a second
        # per look: a fast CI machine finished the job in between and the interrupt came late.
        return b"started" in screen or b"progress" in screen

    wait_until(running, 120, "the job never ran")
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)
    while select.select([leader], [], [], 0.5)[0]:
        try:
            screen.extend(os.read(leader, 65536))
        except OSError:
            break
    os.close(leader)
    text = screen.decode(errors="replace")
    assert process.returncode == 130, text
    assert "Traceback" not in text
    still = r"([0-9a-f-]{36})\t\S*long\.wav\tstill running; fetch it with: asr result \1"
    [task_id] = re.findall(still, text)
    fetched = subprocess.run(
        [sys.executable, "-m", "producer", "result", task_id, "--wait", "300"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=320,
    )  # fmt: skip
    assert fetched.returncode == 0 and "country" in fetched.stdout, fetched.stderr
