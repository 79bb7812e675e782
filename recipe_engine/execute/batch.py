"""Run rows that each carry their own plan in shared batches: the typed API behind prompt
groups and behind a server that batches requests of different profiles.

    from recipe_engine.api import Row, compile_recipe, run_rows
    gentle, strong = compile_recipe("a.yaml"), compile_recipe("b.yaml")  # same model: shared
    results = run_rows(gentle.model, [Row("Hi", gentle.plan), Row("Yo", strong.plan)])
    results[1].next_logits, results[1].conditions

Each row's result equals running its plan on that prompt alone (tests/test_row_plans.py):
rows with different plans are merged into one plan per batch (execute/rows.py), and an op
leaves every row it does not select exactly as it was. A uniform batch runs its plan as is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch

from recipe_engine.execute.gates import GateOutcome
from recipe_engine.execute.reduce import FINITE_ONLY, StepReduction
from recipe_engine.execute.runner import PassResult, generate_pass, trace_pass
from recipe_engine.format.run_spec import GenerationSpec
from recipe_engine.plan import Plan
from recipe_engine.resolve.loaded_model import LoadedModel

__all__ = ["Row", "RowResult", "run_rows"]


@dataclass(frozen=True)
class Row:
    """One prompt and the plan it runs with (a CompiledRecipe's `plan`; Plan() for none)."""

    prompt: str
    plan: Plan


@dataclass
class RowResult:
    prompt: str
    next_logits: torch.Tensor  # [V] float32: the next-token logits after the prompt
    tokens: list[int] = field(default_factory=list)  # generated ids, cut at EOS (generate)
    text: str | None = None  # the generated tokens decoded (generate)
    conditions: list[GateOutcome] = field(default_factory=list)  # its `when:` gates
    finite: bool = True  # every generated step's logits were finite


def _results(model: LoadedModel, rows: Sequence[Row], result: PassResult) -> list[RowResult]:
    out: list[RowResult] = []
    for i, row in enumerate(rows):
        item = RowResult(row.prompt, result.next_logits[i])
        if result.generated:
            item.tokens = result.generated[i]
            with model.lock:  # the tokenizer is shared (LoadedModel)
                item.text = model.tokenizer.decode(item.tokens, skip_special_tokens=True)
        if result.step_finite:
            item.finite = result.step_finite[i]
        if result.gates:
            item.conditions = result.gates[i]
        out.append(item)
    return out


def run_rows(
    model: LoadedModel,
    rows: Sequence[Row],
    *,
    mode: Literal["trace", "generate"] = "trace",
    generation: GenerationSpec | None = None,
    batch_size: int | None = None,
    reduction: StepReduction = FINITE_ONLY,
    progress: Callable[[int], None] | None = None,
) -> list[RowResult]:
    """Run every row with its own plan, `batch_size` rows per trace (default: all in one).

    trace: one forward pass, the next-token logits. generate: `generation` (default greedy,
    20 tokens) with each row's plan on every step. Rows keep their order in the result."""
    if not rows:
        return []
    prompts = [row.prompt for row in rows]
    plans = [row.plan for row in rows]
    size = batch_size or len(rows)
    if mode == "trace":
        result = trace_pass(model, plans, prompts, size, progress)
    else:
        gen = generation or GenerationSpec()
        result = generate_pass(
            model, plans, prompts, gen, size, progress=progress, reduction=reduction
        )
    return _results(model, rows, result)
