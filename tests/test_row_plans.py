"""Prompt groups and rows with their own plans, in one batch: each row equals its group alone.

A mixed batch of three groups with different strengths (merged into one op with a strength per
row), and groups with different interventions (ops masked to their rows), against (a) each group
run alone through the engine and (b) a plain PyTorch forward hook on the Hugging Face model.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from recipe_engine.api import Row, compile_recipe, load_recipe, run_recipe, run_rows
from recipe_engine.execute.rows import merge_row_plans
from recipe_engine.plan import Plan
from tests.conftest import RECIPES
from tests.support.float_tolerance import tiny_logits_tolerance

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RECIPE = RECIPES / "activation-addition.yaml"
PROMPTS = (RECIPES / "data" / "neutral.txt").read_text().split("\n")[:12]
GROUPS = {"weak": (PROMPTS[0:4], 1.0), "mid": (PROMPTS[4:8], 3.0), "strong": (PROMPTS[8:12], 5.0)}


def _flow(items: list[str]) -> str:
    return "[" + ", ".join(f'"{p}"' for p in items) + "]"


def _mixed(mode: str, extra: list[str] | None = None) -> Any:
    groups = ", ".join(
        f"{{name: {name}, prompts: {_flow(prompts)}, strength: {strength}}}"
        for name, (prompts, strength) in GROUPS.items()
    )
    sets = [f"run.prompts=[{groups}]", f"run.mode={mode}", "run.batch_size=12"]
    sets += ["run.generation.max_new_tokens=6", "report.metrics=[]", "expect=[]", *(extra or [])]
    return run_recipe(load_recipe(RECIPE, overrides=sets))


def _alone(prompts: list[str], strength: float, mode: str) -> Any:
    sets = [f"run.prompts={_flow(prompts)}", f"interventions.0.strength={strength}"]
    sets += [
        f"run.mode={mode}",
        "run.generation.max_new_tokens=6",
        "report.metrics=[]",
        "expect=[]",
    ]
    return run_recipe(load_recipe(RECIPE, overrides=sets))


ALL = [p for prompts, _ in GROUPS.values() for p in prompts]


@pytest.mark.parametrize("mode", ["trace", "generate"])
def test_three_strengths_in_one_batch_equal_each_group_alone(mode: str) -> None:
    """Alone = the group's plan on the same batch (same padding), and the group's prompts in a
    batch of their own (other padding): identical greedy tokens, logits within float32 noise.
    The mixed batch applies one op with a strength per row, the group alone one scalar: the
    sums round differently (1.3e-6 apart on an AMD EPYC, under one ulp of the largest logit,
    13), so the tolerance is tiny_logits_tolerance's, derived from the model's widths."""
    mixed = _mixed(mode)
    assert [p.group for p in mixed.prompts] == [n for n in GROUPS for _ in range(4)]
    steered = mixed.passes["steered"]
    for k, (prompts, strength) in enumerate(GROUPS.values()):
        rows = slice(4 * k, 4 * k + 4)
        same_batch = _alone(ALL, strength, mode).passes["steered"]
        got, want = steered.next_logits[rows], same_batch.next_logits[rows]
        torch.testing.assert_close(got, want, atol=tiny_logits_tolerance(want), rtol=0)
        own_batch = _alone(prompts, strength, mode).passes["steered"]
        own = own_batch.next_logits
        torch.testing.assert_close(got, own, atol=tiny_logits_tolerance(own), rtol=0)
        if mode == "generate":
            assert steered.generated[rows] == same_batch.generated[rows]
            assert steered.generated[rows] == own_batch.generated


def test_mixed_rows_equal_a_plain_hook_reference() -> None:
    mixed = _mixed("trace")
    compiled = compile_recipe(load_recipe(RECIPE))
    v = compiled.vectors["sentiment"].tensor.float()
    hf, tok = compiled.model.hf, compiled.model.tokenizer
    block = dict(hf.named_modules())["transformer.h.0"]
    row = 0
    for prompts, strength in GROUPS.values():
        handle = block.register_forward_hook(lambda m, a, out, s=strength: out + s * v)
        try:
            for prompt in prompts:
                with torch.inference_mode():
                    logits = hf(**tok(prompt, return_tensors="pt")).logits[0, -1]
                expected = logits.float()
                got = mixed.passes["steered"].next_logits[row]
                torch.testing.assert_close(
                    got, expected, atol=tiny_logits_tolerance(expected), rtol=0
                )
                row += 1
        finally:
            handle.remove()


def test_groups_with_different_interventions_equal_each_alone() -> None:
    other = "{vector: sentiment, op: project_out, layers: 1, strength: 1.0}"
    groups = (
        f"[{{name: add, prompts: {_flow(PROMPTS[:3])}}}, "
        f"{{name: none, prompts: {_flow(PROMPTS[3:6])}, interventions: []}}, "
        f"{{name: proj, prompts: {_flow(PROMPTS[6:9])}, interventions: [{other}]}}]"
    )
    sets = [f"run.prompts={groups}", "run.batch_size=9", "report.metrics=[]", "expect=[]"]
    mixed = run_recipe(load_recipe(RECIPE, overrides=sets))
    steered, base = mixed.passes["steered"].next_logits, mixed.passes["baseline"].next_logits
    add = _alone(PROMPTS[:3], 3.0, "trace").passes["steered"].next_logits
    torch.testing.assert_close(steered[:3], add, atol=tiny_logits_tolerance(add), rtol=0)
    assert torch.equal(steered[3:6], base[3:6])  # an unsteered group is the baseline, exactly
    proj = run_recipe(
        load_recipe(
            RECIPE,
            overrides=[f"run.prompts={_flow(PROMPTS[6:9])}", f"interventions=[{other}]"],
        )
    ).passes["steered"]
    want = proj.next_logits
    torch.testing.assert_close(steered[6:9], want, atol=tiny_logits_tolerance(want), rtol=0)


def test_run_rows_api_mixes_compiled_plans() -> None:
    compiled = compile_recipe(load_recipe(RECIPE, overrides=["run.prompts=[x]"]))
    rows = [Row(p, compiled.plan if i % 2 else Plan()) for i, p in enumerate(PROMPTS[:6])]
    results = run_rows(compiled.model, rows)
    steered = run_rows(compiled.model, [Row(p, compiled.plan) for p in PROMPTS[:6]])
    plain = run_rows(compiled.model, [Row(p, Plan()) for p in PROMPTS[:6]])
    for i, result in enumerate(results):
        expected = steered[i] if i % 2 else plain[i]
        assert result.prompt == PROMPTS[i]
        want = expected.next_logits
        torch.testing.assert_close(
            result.next_logits, want, atol=tiny_logits_tolerance(want), rtol=0
        )
    generated = run_rows(compiled.model, rows, mode="generate")
    assert all(r.text is not None and r.tokens for r in generated)


def test_merge_keeps_a_uniform_batch_as_it_is() -> None:
    compiled = compile_recipe(load_recipe(RECIPE, overrides=["run.prompts=[x]"]))
    plan = compiled.plan
    assert merge_row_plans([plan, plan, plan]) is plan
    merged = merge_row_plans([plan, Plan(), plan])
    assert len(merged.ops) == len(plan.ops)
    rows = merged.ops[0].rows
    assert rows is not None and rows.reshape(-1).tolist() == [True, False, True]
