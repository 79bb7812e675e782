"""`scripts/eval_tiny_sentiment.py` runs in CI as a smoke test (`--smoke`: layers 0-1, two
strengths), end to end: settings chosen on the tuning lists, measured on the held-out ones."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_eval_script_smoke_run_chooses_on_tuning_and_reports_every_target() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "eval_tiny_sentiment.py"), "--smoke"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=1800,
    )
    out = done.stdout
    assert done.returncode in (0, 1), done.stderr[-2000:]  # 1: a smoke grid misses a target
    assert "chosen on the tuning prompts: layer 0, strength 3" in out
    assert "RESULTS" in out and "18 targets met" in out
    # the sentiment targets hold even on the smoke grid
    for line in out.splitlines():
        if line.strip().startswith(("PASS", "FAIL")) and "topic" not in line:
            assert line.strip().startswith("PASS"), line
