"""The CLI as a shell pipeline's first command, and flags standing for overrides: a reader that
stops early ends `steer` quietly (not an internal error), and `steer sweep --controls N` is
reported at the flag typed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import RECIPES, REPO


def test_a_closed_pipe_ends_quietly_with_sigpipes_status() -> None:
    """`steer ls | head -0`: the reader is gone before the first write (its end of the pipe
    is closed before steer starts, so the write fails whatever the timing)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "recipe_engine", "ls"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=env,
            cwd=REPO,
            check=False,
        )
    finally:
        os.close(write_end)
    err = proc.stderr.decode()
    assert proc.returncode == 141, err
    assert err == ""


def test_sweep_controls_errors_name_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    from recipe_engine.cli.main import main

    argv = ["sweep", str(RECIPES / "head-ablation.yaml"), "--layers", "0", "--strengths", "1"]
    assert main([*argv, "--controls", "2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("command line (--controls 2): /report/controls"), err
    assert "--set" not in err
