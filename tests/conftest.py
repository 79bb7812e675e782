"""Shared fixtures. Nothing here downloads: models are built from configs on the spot."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("NO_COLOR", "1")
# Vectors extracted by tests are cached in a fresh folder per run, never in the user's cache.
os.environ.setdefault("STEER_CACHE_DIR", tempfile.mkdtemp(prefix="steer-test-cache-"))

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
DATA = Path(__file__).resolve().parent / "data"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The sizes and times tests/test_packaging.py measured (CI), before the summary line."""
    from tests.helpers import PACKAGING_NUMBERS

    if PACKAGING_NUMBERS:
        terminalreporter.write_sep("-", "packaging numbers")
        for line in PACKAGING_NUMBERS:
            terminalreporter.write_line(line)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread for a module's tests: on tiny models, more threads only add
    synchronisation (10-100x slower on a busy 2-core box). Use with
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    """An empty folder that is its own repository root (has .git), for recipes under test."""
    (tmp_path / ".git").mkdir()
    return tmp_path


@pytest.fixture
def write(repo_dir: Path):  # type: ignore[no-untyped-def]
    """write("a.yaml", text) -> path inside repo_dir (parents created)."""

    def _write(name: str, text: str | bytes) -> Path:
        path = repo_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path

    return _write


MINIMAL = """\
version: 1
name: minimal
model: {id: builtin:tiny-random}
run:
  mode: trace
  prompts: ["hello"]
"""
