"""Vectors reach the model's device and dtype once, at compile time: the in-trace move is a no-op.

Locally the compiled plan already holds each vector in the model's dtype on its device, so
`execute/ops.transform` adds it without any `.to()` (checked by making `.to()` raise). A remote
server's activations live on its own device: there the in-trace move still happens (the parity
and backend tests run that path through `remote="local"`), checked here with activations of
another dtype.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from recipe_engine.compiler import compile_plan
from recipe_engine.execute.ops import transform
from recipe_engine.format.recipe import Recipe
from recipe_engine.resolve.model_loader import load_model
from recipe_engine.vectors.build import build_vectors


def _plan_op(dtype: str) -> Any:
    recipe = Recipe.model_validate(
        {
            "version": 1,
            "name": "placement",
            "model": {"id": "builtin:tiny-random-llama", "dtype": dtype},
            "vectors": {"r": {"kind": "random", "seed": 3, "norm": 2.0}},
            "interventions": [{"vector": "r", "op": "add", "layers": 1, "strength": 1.5}],
            "run": {"mode": "trace", "prompts": ["hello"]},
        }
    )
    model = load_model(recipe.model, Path("."))
    built = build_vectors(recipe, model, None, cache=False)
    plan = compile_plan(recipe, model, {n: v.tensor for n, v in built.items()}, None)
    return model, plan.ops[0], built["r"].tensor


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_plan_vectors_match_the_model_and_skip_the_in_trace_move(
    dtype: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, op, source = _plan_op(dtype)
    weights = next(model.hf.parameters())
    assert op.vector.dtype == weights.dtype == getattr(torch, dtype)
    assert op.vector.device == weights.device == model.device
    h = torch.randn(2, 3, source.shape[0]).to(weights.dtype)
    want = h + 1.5 * source.to(weights.dtype)  # computed before `.to()` is forbidden

    def no_move(*args: Any, **kwargs: Any) -> torch.Tensor:
        raise AssertionError("the in-trace .to() ran for a vector the plan already placed")

    monkeypatch.setattr(torch.Tensor, "to", no_move)
    assert torch.equal(transform(h, op), want)


def test_activations_elsewhere_still_get_the_vector_moved() -> None:
    """What a remote server sees: activations in another dtype than the plan's vector."""
    _, op, source = _plan_op("bfloat16")
    h = torch.zeros(1, 2, source.shape[0], dtype=torch.float64)
    out = transform(h, op)
    assert out.dtype == torch.float64
    assert torch.allclose(out[0, 0], 1.5 * source.bfloat16().double())
