"""Length-sorted batching never reorders rows: row i is always prompt i."""

from __future__ import annotations

from pathlib import Path

import torch

from recipe_engine.format.model_spec import ModelSpec
from recipe_engine.resolve.model_loader import load_model
from recipe_engine.vectors.extraction import read_activations

PROMPTS = [
    "a much longer prompt than the others here",
    "hi",
    "medium sized one",
    "x",
    "another fairly long prompt, with a comma",
    "two words",
    "ok",
]


def test_rows_come_back_in_prompt_order() -> None:
    model = load_model(ModelSpec(id="builtin:tiny-random"), Path("."))
    kwargs = dict(layer=2, site="resid_post", module=None, position="mean")
    batched = read_activations(model, PROMPTS, batch_size=2, **kwargs)  # 4 batches, sorted
    alone = torch.cat([read_activations(model, [p], batch_size=1, **kwargs) for p in PROMPTS])
    assert (batched - alone).abs().max() <= 1e-5
