"""A vector file never depends on whether the cache was used: a `sha256:` pin made from one
build holds for every other build on the same machine (issue: --no-cache left `cache_key` out of
the provenance). Across machines the floats differ in their last bits; see the rebuild test."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from tests.conftest import RECIPES, REPO
from tests.support.float_tolerance import (
    TINY_RESID_MAGNITUDE,
    TINY_WIDTH,
    reordered_sum_tolerance,
)

SHIPPED = RECIPES / "vectors" / "sentiment.safetensors"


def _build(out: Path, cache: Path, *flags: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "recipe_engine",
            "vectors",
            "build",
            "recipes/activation-addition.yaml",
            "--out",
            str(out),
            *flags,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "STEER_CACHE_DIR": str(cache), **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    return hashlib.sha256(out.read_bytes()).hexdigest()


def _pin() -> str:
    text = (RECIPES / "vector-from-file.yaml").read_text(encoding="utf-8")
    [pin] = re.findall(r"sha256: ([0-9a-f]{64})", text)
    return pin


def test_cached_and_uncached_builds_are_byte_identical(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    digests = {
        "cache miss": _build(tmp_path / "a.safetensors", cache),
        "cache hit": _build(tmp_path / "b.safetensors", cache),
        "--no-cache": _build(tmp_path / "c.safetensors", cache, "--no-cache"),
        "STEER_NO_CACHE=1": _build(
            tmp_path / "d.safetensors", tmp_path / "unused", env={"STEER_NO_CACHE": "1"}
        ),
    }
    assert not (tmp_path / "unused").exists()  # the last one really ran without a cache
    assert len(set(digests.values())) == 1, digests
    # every build records what the shipped file records (its pin was made from a cached build)
    assert _provenance_fields(tmp_path / "c.safetensors") == _provenance_fields(SHIPPED)


def _provenance_fields(path: Path) -> set[str]:
    header = safetensors_header(path)
    [vector] = json.loads(header["__metadata__"]["vectors"]).values()
    return set(vector)


def test_shipped_vector_matches_its_pin() -> None:
    """The fix keeps `cache_key` in every build (the shipped file has it), so the shipped bytes
    and the pin in vector-from-file.yaml stay as they are."""
    assert hashlib.sha256(SHIPPED.read_bytes()).hexdigest() == _pin()
    assert "cache_key" in _provenance_fields(SHIPPED)


def safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file, read by its published layout: an 8-byte
    little-endian length, then that many bytes of JSON."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header: dict[str, Any] = json.loads(raw[8 : 8 + length])
    return header


def test_rebuilding_the_shipped_file_as_its_comment_says_matches_the_shipped_file(
    tmp_path: Path,
) -> None:
    """vector-from-file.yaml says how its file was made; doing that again, in this checkout
    (wherever it lies), gives the shipped provenance exactly (it holds nothing of the place)
    and the shipped vector up to float32 summation order. Not its sha256 pin: the file was
    built on one CPU, and another one's BLAS kernels sum in another order (an AMD EPYC gave
    entries 1.9e-6 apart, largest 5.5). Bit-identical rebuilds hold within one machine and
    library build: test_cached_and_uncached_builds_are_byte_identical."""
    rebuilt = tmp_path / "sentiment.safetensors"
    _build(rebuilt, tmp_path / "cache", "--no-cache")
    got, want = _provenance(rebuilt), _provenance(SHIPPED)
    norm_got, norm_want = got.pop("norm"), want.pop("norm")
    assert got == want
    # a difference of means of block-0 activations up to TINY_RESID_MAGNITUDE summed over
    # TINY_WIDTH-term reductions; the norm (rounded to 6 decimals) adds that rounding.
    tolerance = reordered_sum_tolerance(TINY_RESID_MAGNITUDE, TINY_WIDTH)
    vector = load_file(rebuilt)["sentiment"]
    torch.testing.assert_close(vector, load_file(SHIPPED)["sentiment"], atol=tolerance, rtol=0)
    assert abs(norm_got - norm_want) <= math.sqrt(vector.numel()) * tolerance + 1e-6


def _provenance(path: Path) -> dict[str, Any]:
    header = safetensors_header(path)
    [vector] = json.loads(header["__metadata__"]["vectors"]).values()
    assert isinstance(vector, dict)
    return {**vector, **{k: v for k, v in header["__metadata__"].items() if k != "vectors"}}


def test_the_weights_fingerprint_ignores_the_folder_a_model_was_loaded_from() -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from recipe_engine.resolve.model_loader import weights_fingerprint

    config = GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=32, n_positions=16)
    model = GPT2LMHeadModel(config)
    model.config._name_or_path = "/one/checkout/recipe_engine/builtin_weights/tiny"
    first = weights_fingerprint(model)
    model.config._name_or_path = "/another/checkout/recipe_engine/builtin_weights/tiny"
    assert weights_fingerprint(model) == first
    with torch.no_grad():
        model.lm_head.weight[0, 0] += 1.0  # but the weights are what it is about
    assert weights_fingerprint(model) != first
