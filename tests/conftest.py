"""Shared fixtures. Nothing here downloads: models are built from configs on the spot."""

from __future__ import annotations

import os
import tempfile
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
