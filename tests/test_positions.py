"""Position words mean the same thing at every generation step as the README's table says,
and padding is never steered: a left-padded batch equals each prompt run alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from recipe_engine.compiler import compile_plan
from recipe_engine.execute.positions import ALL, NONE, position_mask
from recipe_engine.execute.reduce import StepReduction
from recipe_engine.execute.runner import generate_pass, trace_pass
from recipe_engine.format.model_spec import ModelSpec
from recipe_engine.format.positions import (
    IndexPositions,
    NamedPositions,
    PositionSelector,
    SlicePositions,
    parse_positions,
)
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.run_spec import GenerationSpec
from recipe_engine.resolve.model_loader import LoadedModel, load_model
from tests.support.engine_reference import hooks, reference_generate

PROMPTS = ["The cat sat on the mat", "Hi there", "A dog ran"]  # different lengths: padding
NEW = 4

KEEP = StepReduction(keep_logits=True)  # every step's full logits, to compare


def expected(positions: Any, step: int, chunk: int) -> list[int]:
    """The README table, for one unpadded prompt (step 0 chunk = prompt length)."""
    if step > 0:
        return [0] if positions in ("all", "last", "generated") else []
    if positions in ("all", "prompt"):
        return list(range(chunk))
    if positions == "generated":
        return []
    if positions == "last":
        return [chunk - 1]
    if isinstance(positions, list):
        return sorted({p % chunk for p in positions if -chunk <= p < chunk})
    start, stop = (int(x) if x else None for x in positions.split(":"))
    return list(range(chunk))[slice(start, stop)]


CASES = ["all", "prompt", "last", [0], [0, -1], [1, -2], "1:3", "-2:", ":2", [50]]
GEN_CASES = ["all", "prompt", "generated", "last", [0, -1], "2:"]


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    return load_model(ModelSpec(id="builtin:tiny-random"), Path("."))


def _plan(model: LoadedModel, positions: Any, mode: str):  # type: ignore[no-untyped-def]
    recipe = Recipe.model_validate(
        {
            "version": 1,
            "name": "p",
            "model": {"id": "builtin:tiny-random"},
            "vectors": {"v": {"kind": "random", "seed": 3, "norm": 8.0}},
            "interventions": [
                {"vector": "v", "layers": 1, "positions": positions, "strength": 1.0}
            ],
            "run": {"mode": mode, "prompts": ["x"]},
        }
    )
    vector = torch.randn(model.shape.hidden_size, generator=torch.Generator().manual_seed(3)) * 2
    return compile_plan(recipe, model, {"v": vector}), vector


def _ctx(model: LoadedModel, positions: Any, vector: torch.Tensor):  # type: ignore[no-untyped-def]
    return hooks(
        model.hf,
        "gpt2",
        "resid_post",
        {1: 1.0},
        "add",
        vector,
        1.0,
        lambda step, chunk: expected(positions, step, chunk),
    )


@pytest.mark.parametrize("positions", CASES, ids=str)
def test_trace_positions_match_reference_in_a_padded_batch(
    model: LoadedModel, positions: Any
) -> None:
    plan, vector = _plan(model, positions, "trace")
    batched = trace_pass(model, plan, PROMPTS, batch_size=8).next_logits
    rows = []
    for prompt in PROMPTS:  # a fresh context per prompt: the hooks count steps
        with torch.inference_mode(), _ctx(model, positions, vector):
            rows.append(model.hf(**model.tokenizer(prompt, return_tensors="pt")).logits[0, -1])
    reference = torch.stack(rows)
    assert (batched - reference).abs().max() <= 1e-5


@pytest.mark.parametrize("positions", GEN_CASES, ids=str)
def test_generation_positions_per_step(model: LoadedModel, positions: Any) -> None:
    plan, vector = _plan(model, positions, "generate")
    gen = GenerationSpec(max_new_tokens=NEW, min_new_tokens=NEW)
    for prompt in PROMPTS:  # one at a time: greedy tokens compared without padding numerics
        engine = generate_pass(model, plan, [prompt], gen, batch_size=1, reduction=KEEP)
        with _ctx(model, positions, vector):
            tokens, logits = reference_generate(model, prompt, NEW)
        assert engine.generated[0] == tokens
        for step, expected in enumerate(logits):
            assert (engine.step_logits[0][step] - expected).abs().max() <= 1e-5


def test_padded_generation_equals_single_prompt_runs(model: LoadedModel) -> None:
    plan, _ = _plan(model, "all", "generate")
    gen = GenerationSpec(max_new_tokens=NEW, min_new_tokens=NEW)
    batched = generate_pass(model, plan, PROMPTS, gen, batch_size=8, reduction=KEEP)
    for row, prompt in enumerate(PROMPTS):
        alone = generate_pass(model, plan, [prompt], gen, batch_size=1, reduction=KEEP)
        assert (batched.step_logits[row] - alone.step_logits[0]).abs().max() <= 1e-4
        assert batched.generated[row] == alone.generated[0]


def test_mask_never_covers_padding() -> None:
    attention = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    mask = position_mask(parse_positions("all"), attention, 4)
    assert isinstance(mask, torch.Tensor)
    assert mask.squeeze(-1).tolist() == [[False, False, True, True], [True] * 4]
    first = position_mask(parse_positions([0]), attention, 4)
    assert isinstance(first, torch.Tensor)
    assert first.squeeze(-1).tolist() == [[False, False, True, False], [True, False, False, False]]
    assert position_mask(parse_positions("all"), torch.ones(2, 4), 4) is ALL
    assert position_mask(parse_positions("prompt"), torch.ones(2, 5), 1) is NONE  # a later step
    assert position_mask(parse_positions("generated"), torch.ones(2, 5), 1) is ALL


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("all", NamedPositions("all")),
        ("generated", NamedPositions("generated")),
        ([0, -1], IndexPositions((0, -1))),
        ("2:", SlicePositions(2, None, "2:")),
        ("-2:", SlicePositions(-2, None, "-2:")),
        (":3", SlicePositions(None, 3, ":3")),
        ("1:-1", SlicePositions(1, -1, "1:-1")),
        ("02:", SlicePositions(2, None, "02:")),
    ],
)
def test_one_parser_reads_every_position_form(written: Any, expected: PositionSelector) -> None:
    selector = parse_positions(written)
    assert selector == expected
    assert selector.written == written  # explain and the report show it as the recipe wrote it


@pytest.mark.parametrize("bad", ["first", "1", "1:2:3", "a:b", ""])
def test_the_parser_refuses_what_validation_refuses(bad: str) -> None:
    from pydantic import TypeAdapter, ValidationError

    from recipe_engine.format.positions import PositionSpec

    with pytest.raises(ValidationError):
        TypeAdapter(PositionSpec).validate_python(bad)
    with pytest.raises(ValueError):
        parse_positions(bad)


def test_the_plan_carries_parsed_positions(model: LoadedModel) -> None:
    plan, _ = _plan(model, "1:3", "trace")
    assert plan.ops[0].positions == SlicePositions(1, 3, "1:3")
    assert plan.ops[0].describe()["positions"] == "1:3"
