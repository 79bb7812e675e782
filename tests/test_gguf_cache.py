"""The GGUF conversion cache without a real model: keyed by content, written whole, converted
once when two runs ask at the same time, nothing left behind by a failed conversion."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest

from recipe_engine.errors import EnvironmentFailure
from recipe_engine.resolve import gguf_cache


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """A cache in tmp_path and a stand-in for transformers' dequantizing that counts calls."""
    monkeypatch.setenv("STEER_MODEL_CACHE", str(tmp_path / "cache"))
    calls: list[Path] = []

    def dequantize(gguf: Path, out: Path) -> None:
        calls.append(gguf)
        time.sleep(0.2)  # long enough for a second caller to arrive meanwhile
        (out / "config.json").write_text("{}", encoding="utf-8")
        (out / "model.safetensors").write_bytes(gguf.read_bytes())

    monkeypatch.setattr(gguf_cache, "_dequantize", dequantize)
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF weights v1")
    return {"calls": calls, "model": model, "cache": tmp_path / "cache"}


def test_keyed_by_content_and_converted_once(fake: dict[str, object]) -> None:
    model, calls = fake["model"], fake["calls"]
    assert isinstance(model, Path) and isinstance(calls, list)
    first = gguf_cache.cached_gguf_folder(model)
    assert first.name == "gguf-v1-" + hashlib.sha256(b"GGUF weights v1").hexdigest()
    assert gguf_cache.cached_gguf_folder(model) == first and len(calls) == 1
    renamed = model.with_name("same-bytes.gguf")
    renamed.write_bytes(model.read_bytes())
    assert gguf_cache.cached_gguf_folder(renamed) == first and len(calls) == 1
    model.write_bytes(b"GGUF weights v2")  # replaced in place: a new entry
    assert gguf_cache.cached_gguf_folder(model) != first and len(calls) == 2


def test_two_runs_at_once_convert_once(fake: dict[str, object]) -> None:
    model, calls = fake["model"], fake["calls"]
    assert isinstance(model, Path) and isinstance(calls, list)
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(gguf_cache.cached_gguf_folder(model)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and len(set(results)) == 1 and len(results) == 3


def test_a_failed_conversion_leaves_nothing(
    fake: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(gguf: Path, out: Path) -> None:
        (out / "model.safetensors").write_bytes(b"half")
        raise EnvironmentFailure("transformers cannot read the GGUF file m.gguf")

    monkeypatch.setattr(gguf_cache, "_dequantize", broken)
    model, cache = fake["model"], fake["cache"]
    assert isinstance(model, Path) and isinstance(cache, Path)
    with pytest.raises(EnvironmentFailure):
        gguf_cache.cached_gguf_folder(model)
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []
