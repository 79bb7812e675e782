"""Small helpers for tests (kept apart from conftest so test modules can import them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from recipe_engine.validate import ValidationResult

__all__ = ["PACKAGING_NUMBERS", "codes", "run_steer"]

# Sizes and times measured by tests/test_packaging.py, printed in pytest's terminal summary
# (conftest.py) so that CI logs show them without -s.
PACKAGING_NUMBERS: list[str] = []


def codes(result: ValidationResult) -> list[str]:
    return [d.code for d in result.diagnostics]


def run_steer(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recipe_engine", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "NO_COLOR": "1", "HF_HUB_OFFLINE": "1"},
    )
