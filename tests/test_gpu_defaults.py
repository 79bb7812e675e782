"""Batch-size rules per device: a CUDA device gets larger batches unless the recipe says."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch

from recipe_engine.format.recipe import Recipe
from recipe_engine.pipeline import GPU_BATCH_SIZE, batch_for_device
from recipe_engine.vectors.extraction import extraction_batch_size


def _recipe(**run: Any) -> Recipe:
    return Recipe.model_validate(
        {
            "version": 1,
            "name": "defaults",
            "model": {"id": "builtin:tiny-random"},
            "run": {"mode": "generate", "prompts": ["x"], **run},
        }
    )


@pytest.mark.parametrize(
    ("device", "run", "want"),
    [
        ("cuda", {}, GPU_BATCH_SIZE),
        ("cuda", {"batch_size": 8}, 8),  # written in the recipe: kept, even if it is the default
        ("cuda", {"batch_size": 200}, 200),
        ("cpu", {}, 8),
    ],
)
def test_run_batch_size_per_device(device: str, run: dict[str, Any], want: int) -> None:
    model: Any = SimpleNamespace(device=torch.device(device))
    recipe = _recipe(**run)
    assert batch_for_device(recipe, model).run.batch_size == want
    assert recipe.run.batch_size == run.get("batch_size", 8)  # the loaded recipe is untouched


@pytest.mark.parametrize(
    ("device", "requested", "want"),
    [("cuda", 8, 64), ("cuda", 128, 128), ("cpu", 8, 16), ("cpu", 32, 32), ("mps", 8, 16)],
)
def test_extraction_batch_size_per_device(device: str, requested: int, want: int) -> None:
    assert extraction_batch_size(requested, torch.device(device)) == want
