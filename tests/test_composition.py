"""Ops on the same site compose in the order written; across sites they run in model order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from recipe_engine.compiler import compile_plan
from recipe_engine.execute.runner import trace_pass
from recipe_engine.format.model_spec import ModelSpec
from recipe_engine.format.recipe import Recipe
from recipe_engine.resolve.model_loader import LoadedModel, load_model
from tests.support.engine_reference import reference_op

PROMPTS = ["The cat sat on the mat", "Hi"]


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    return load_model(ModelSpec(id="builtin:tiny-random"), Path("."))


def _vectors(model: LoadedModel) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    d = model.shape.hidden_size
    return {"a": torch.randn(d, generator=g), "b": torch.randn(d, generator=g)}


def _plan(model: LoadedModel, interventions: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
    recipe = Recipe.model_validate(
        {
            "version": 1,
            "name": "c",
            "model": {"id": "builtin:tiny-random"},
            "vectors": {"a": {"kind": "random"}, "b": {"kind": "random", "seed": 1}},
            "interventions": interventions,
            "run": {"mode": "trace", "prompts": ["x"]},
        }
    )
    return compile_plan(recipe, model, _vectors(model))


def _reference(
    model: LoadedModel,
    edits: dict[str, list[tuple[str, str, float]]],
    vectors: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """edits: module path -> [(op, vector name, strength)] applied in order on its output."""
    vectors = vectors or _vectors(model)
    modules = dict(model.hf.named_modules())
    handles = []
    for path, ops in edits.items():

        def hook(module: Any, args: Any, out: torch.Tensor, ops: Any = ops) -> torch.Tensor:
            for op, name, s in ops:
                out = reference_op(out, op, vectors[name], s)
            return out

        handles.append(modules[path].register_forward_hook(hook))
    try:
        with torch.inference_mode():
            return torch.stack(
                [model.hf(**model.tokenizer(p, return_tensors="pt")).logits[0, -1] for p in PROMPTS]
            )
    finally:
        for handle in handles:
            handle.remove()


def test_same_site_composes_in_recipe_order(model: LoadedModel) -> None:
    add_then_project = [
        {"vector": "a", "op": "add", "layers": 2, "strength": 3.0},
        {"vector": "b", "op": "project_out", "layers": 2},
    ]
    engine = trace_pass(model, _plan(model, add_then_project), PROMPTS, 8).next_logits
    expected = _reference(
        model, {"transformer.h.2": [("add", "a", 3.0), ("project_out", "b", 1.0)]}
    )
    assert (engine - expected).abs().max() <= 1e-5
    reversed_order = trace_pass(model, _plan(model, add_then_project[::-1]), PROMPTS, 8).next_logits
    assert (reversed_order - engine).abs().max() > 1e-3  # order matters, and is the one written


def test_interventions_written_out_of_model_order_are_sorted(model: LoadedModel) -> None:
    descending = [
        {"vector": "a", "op": "add", "layers": 3, "strength": 2.0},
        {"vector": "b", "op": "add", "layers": 1, "strength": 2.0},
    ]
    plan = _plan(model, descending)
    assert [op.layer for op in plan.ops] == [1, 3]
    engine = trace_pass(model, plan, PROMPTS, 8).next_logits  # no OutOfOrderError
    expected = _reference(
        model, {"transformer.h.1": [("add", "b", 2.0)], "transformer.h.3": [("add", "a", 2.0)]}
    )
    assert (engine - expected).abs().max() <= 1e-5


def test_weights_multiply_strength_and_normalize_uses_unit_vector(model: LoadedModel) -> None:
    item = {
        "vector": "a",
        "op": "add",
        "layers": {1: 0.5, 2: 2.0},
        "strength": 3.0,
        "normalize": True,
    }
    engine = trace_pass(model, _plan(model, [item]), PROMPTS, 8).next_logits
    a = _vectors(model)["a"]
    expected = _reference(
        model,
        {"transformer.h.1": [("add", "a", 1.5)], "transformer.h.2": [("add", "a", 6.0)]},
        {"a": a / a.norm()},
    )
    assert (engine - expected).abs().max() <= 1e-5
