"""Per-position vectors (activation, position: all) patch position by position: row i goes to
each prompt's i-th real token at step 0, whatever the padding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from recipe_engine.compiler import compile_plan
from recipe_engine.errors import RecipeError
from recipe_engine.execute.runner import trace_pass
from recipe_engine.format.model_spec import ModelSpec
from recipe_engine.format.recipe import Recipe
from recipe_engine.resolve.model_loader import LoadedModel, load_model
from recipe_engine.vectors import build_vectors

SOURCE = "Paris is lovely"
TARGETS = ["Rome is lovely in May, they say", "Hi"]  # the second pads the first batch


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    return load_model(ModelSpec(id="builtin:tiny-random"), Path("."))


def _recipe(op: str = "set") -> Recipe:
    return Recipe.model_validate(
        {
            "version": 1,
            "name": "patch",
            "model": {"id": "builtin:tiny-random"},
            "vectors": {
                "src": {"kind": "activation", "prompt": SOURCE, "layer": 2, "position": "all"}
            },
            "interventions": [{"vector": "src", "op": op, "layers": 2}],
            "run": {"mode": "trace", "prompts": ["x"]},
        }
    )


def _hook_logits(model: LoadedModel, prompt: str, rows: torch.Tensor | None) -> torch.Tensor:
    def hook(module: torch.nn.Module, args: object, out: torch.Tensor) -> torch.Tensor:
        out = out.clone()
        n = min(rows.shape[0], out.shape[1])
        out[0, :n] = rows[:n]
        return out

    handle = model.hf.transformer.h[2].register_forward_hook(hook) if rows is not None else None
    try:
        with torch.inference_mode():
            return model.hf(**model.tokenizer(prompt, return_tensors="pt")).logits[0, -1]
    finally:
        if handle:
            handle.remove()


def test_activation_all_is_one_row_per_token(model: LoadedModel) -> None:
    recipe = _recipe()
    built = build_vectors(recipe, model, cache=False)["src"].tensor
    assert built.shape == (len(model.tokenizer(SOURCE)["input_ids"]), model.shape.hidden_size)


def test_patching_a_prompt_with_itself_changes_nothing(model: LoadedModel) -> None:
    recipe = _recipe()
    vectors = {k: v.tensor for k, v in build_vectors(recipe, model, cache=False).items()}
    patched = trace_pass(model, compile_plan(recipe, model, vectors), [SOURCE], 8).next_logits
    assert (patched[0] - _hook_logits(model, SOURCE, None)).abs().max() <= 1e-5


def test_patching_into_other_prompts_matches_a_hook(model: LoadedModel) -> None:
    recipe = _recipe()
    vectors = {k: v.tensor for k, v in build_vectors(recipe, model, cache=False).items()}
    engine = trace_pass(model, compile_plan(recipe, model, vectors), TARGETS, 8).next_logits
    rows = vectors["src"]
    for i, prompt in enumerate(TARGETS):
        expected = _hook_logits(model, prompt, rows)
        assert (engine[i] - expected).abs().max() <= 1e-5
    assert (engine[0] - _hook_logits(model, TARGETS[0], None)).abs().max() > 1e-4


def test_per_position_vectors_refuse_direction_ops(model: LoadedModel) -> None:
    recipe = _recipe("project_out")
    vectors = {k: v.tensor for k, v in build_vectors(recipe, model, cache=False).items()}
    with pytest.raises(RecipeError) as info:
        compile_plan(recipe, model, vectors)
    assert info.value.diagnostics[0].code == "vector-shape"
