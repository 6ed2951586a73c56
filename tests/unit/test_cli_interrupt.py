"""Ctrl-C anywhere in the ``asr`` command line exits 130 without a traceback."""

from __future__ import annotations

import argparse

import producer.cli as cli
from producer.cli.codes import RET_INTERRUPTED


def test_ctrl_c_outside_a_wait_exits_as_interrupted(monkeypatch, capsys):
    # As when Ctrl-C comes after the jobs ended, while their results are printed.
    def interrupted(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    parser = argparse.ArgumentParser()
    parser.set_defaults(run=interrupted)
    monkeypatch.setattr(cli, "parser", lambda prog: parser)

    assert cli.main([], default=None) == RET_INTERRUPTED == 130
    assert capsys.readouterr().err == "interrupted\n"
