"""Every forward pass a run needs, in one place: the prompts (baseline and steered) and the
neutral texts the report's metrics read.

Picks the runner for the backend and mode (vLLM, trace, generate, edit), turns a sampler's
refusal of NaN/Inf into a NumericalFailure, and checks every logit it returns is finite
(numerics.py). report/ then only measures what these passes computed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from recipe_engine.errors import NumericalFailure, UsageError
from recipe_engine.execute.numerics import is_non_finite_error, likely_cause, require_finite
from recipe_engine.execute.reduce import StepReduction, token_ids
from recipe_engine.execute.runner import (
    PassResult,
    RowPlans,
    generate_pass,
    score_texts,
    text_logits,
    trace_pass,
)
from recipe_engine.format.prompt_groups import prompt_parts
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.report_spec import (
    KLBaselineMetric,
    PerplexityMetric,
    TokenProbMetric,
)
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.plan import Plan
from recipe_engine.resolve.loaded_model import LoadedModel
from recipe_engine.vectors.sources import resolve_prompts

__all__ = ["RunPasses", "TextLogits", "run_pass", "run_passes", "step_reduction"]

Progress = Callable[[str, int, int], None]  # (stage, done, total)
TextLogits = list[tuple[torch.Tensor, torch.Tensor]]  # per text: (token ids [T], logits [T, V])


@dataclass
class RunPasses:
    """What a run computed, keyed the way the report reads it."""

    prompts: list[str]
    sides: dict[str, PassResult]  # "baseline" (unless compare_baseline is off), "steered"
    started: float  # time.perf_counter() when the passes began: the report's run_s
    # kl_baseline with `text:`: metric index -> (steered, clean) logits of its texts
    text_logits: dict[int, tuple[TextLogits, TextLogits]] = field(default_factory=dict)
    # perplexity: metric index -> side -> mean negative log-likelihood per text
    text_nll: dict[int, dict[str, list[float]]] = field(default_factory=dict)
    texts: dict[int, int] = field(default_factory=dict)  # metric index -> number of texts
    groups: list[str | None] = field(default_factory=list)  # per prompt: its prompt group
    # metrics on generated text: side -> its continuations as the unsteered model reads them
    # (an evaluate.judge.Judged each, filled by the evaluate stage, which comes after this one)
    judged: dict[str, Any] = field(default_factory=dict)
    samples: int = 1  # run.samples: continuations per prompt


def step_reduction(recipe: Recipe, model: LoadedModel) -> StepReduction:
    """What the report reads of each generated step: the token sets of `token_prob` metrics
    `at: generated` (the finite flag is always kept)."""
    sets: list[tuple[int, ...]] = []
    with model.lock:  # the tokenizer is shared (LoadedModel)
        for metric in recipe.report.metrics:
            if isinstance(metric, TokenProbMetric) and metric.at == "generated":
                for words in metric.tokens.values():
                    ids = tuple(token_ids(model.tokenizer, words))
                    if ids not in sets:
                        sets.append(ids)
    return StepReduction(tuple(sets))


def run_pass(
    recipe: Recipe,
    model: LoadedModel,
    plan: Plan,
    prompts: list[str],
    progress: Progress | None,
    label: str,
    rows: RowPlans | None = None,
) -> PassResult:
    """One pass over the prompts: `plan` for every prompt, or `rows`, one plan per prompt
    (prompt groups; `plan` then names the recipe's plan in a NaN/Inf message)."""
    run = recipe.run
    row_plans = plan if rows is None else rows
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if progress:
            progress(label, done[0], len(prompts))

    dtype = getattr(model.hf, "dtype", None)
    reduction = step_reduction(recipe, model)
    if model.backend == "vllm":
        from recipe_engine.execute.vllm_runner import vllm_pass

        if plan.text_positions():
            raise UsageError(
                "positions by role or marker need the local or remote backend: vLLM schedules "
                "tokens of many prompts in one flat batch"
            )
        result = vllm_pass(
            model,
            plan,
            prompts,
            run.generation,
            trace_only=run.mode == "trace",
            progress=tick,
            reduction=reduction,
        )
    elif run.mode == "trace":
        result = trace_pass(model, row_plans, prompts, run.batch_size, tick)
    else:
        try:
            result = generate_pass(
                model,
                row_plans,
                prompts,
                run.generation,
                run.batch_size,
                persistent=run.mode == "edit",
                progress=tick,
                reduction=reduction,
            )
        except RuntimeError as exc:  # the sampler refuses NaN/Inf probabilities
            if not is_non_finite_error(exc):
                raise
            raise NumericalFailure(
                f"the {label} model produced NaN/Inf probabilities while sampling: "
                f"{likely_cause(plan, dtype)}"
            ) from exc
    require_finite(result.next_logits, "next-token logits of the prompts", plan, dtype)
    require_finite(result.step_finite, "generated steps", plan, dtype)
    return result


def _text_passes(
    recipe: Recipe, model: LoadedModel, plan: Plan, doc: LoadedDocument, passes: RunPasses
) -> None:
    """The neutral texts of kl_baseline (steered and clean logits) and perplexity metrics."""
    size = recipe.run.batch_size
    dtype = getattr(model.hf, "dtype", None)
    for index, metric in enumerate(recipe.report.metrics):
        if not isinstance(metric, (KLBaselineMetric, PerplexityMetric)) or metric.text is None:
            continue
        pointer = f"/report/metrics/{index}/text"
        texts = resolve_prompts(metric.text, doc, pointer, doc.path.parent, model.tokenizer)
        passes.texts[index] = len(texts)
        if isinstance(metric, KLBaselineMetric):
            steered = text_logits(model, plan, texts, size)
            clean = text_logits(model, Plan(), texts, size)
            require_finite([s for _, s in steered], "neutral texts", plan, dtype)
            require_finite([c for _, c in clean], "neutral texts", Plan(), dtype)
            passes.text_logits[index] = (steered, clean)
            continue
        sides = {"steered": plan}
        if recipe.run.compare_baseline:
            sides["baseline"] = Plan()
        passes.text_nll[index] = {
            side: score_texts(model, side_plan, texts, size) for side, side_plan in sides.items()
        }


def _prompt_rows(
    recipe: Recipe,
    model: LoadedModel,
    plan: Plan,
    doc: LoadedDocument,
    part_plans: list[Plan] | None,
) -> tuple[list[str], list[Plan], list[str | None]]:
    """Every prompt of run.prompts (each `run.samples` times in a row), with its row's plan and
    its prompt group's name (None: the recipe's own interventions)."""
    prompts: list[str] = []
    rows: list[Plan] = []
    groups: list[str | None] = []
    parts = list(prompt_parts(recipe.run.prompts))
    samples = recipe.run.samples
    with model.lock:  # the tokenizer (its chat template) is shared
        for part, part_plan in zip(parts, part_plans or [plan] * len(parts), strict=True):
            texts = resolve_prompts(
                part.source, doc, part.pointer, doc.path.parent, model.tokenizer
            )
            prompts += [text for text in texts for _ in range(samples)]
            rows += [part_plan] * (len(texts) * samples)
            name = None if part.group is None else (part.group.name or f"#{part.index}")
            groups += [name] * (len(texts) * samples)
    return prompts, rows, groups


def run_passes(
    recipe: Recipe,
    model: LoadedModel,
    plan: Plan,
    doc: LoadedDocument,
    progress: Progress | None = None,
    baseline: PassResult | None = None,
    part_plans: list[Plan] | None = None,
) -> RunPasses:
    """Run the passes of a recipe's own model: baseline and steered, and the neutral texts of
    its metrics. `baseline` reuses an unsteered pass of the same prompts (sweeps, controls).
    `part_plans`: one plan per part of run.prompts (compiler.compile_part_plans), when it holds
    prompt groups; their rows share batches, each with its own plan. With `run.samples: K`,
    each prompt is run K times (sampled). The prompting side and the judging of generated text
    are the evaluate stage's (evaluate/sides.py)."""
    prompts, rows, groups = _prompt_rows(recipe, model, plan, doc, part_plans)
    passes = RunPasses(prompts, {}, time.perf_counter(), samples=recipe.run.samples)
    passes.groups = groups if any(g is not None for g in groups) else []
    if baseline is not None:
        passes.sides["baseline"] = baseline
    elif recipe.run.compare_baseline:
        passes.sides["baseline"] = run_pass(recipe, model, Plan(), prompts, progress, "baseline")
    same = all(row is plan for row in rows)
    passes.sides["steered"] = run_pass(
        recipe, model, plan, prompts, progress, "steered", None if same else rows
    )
    _text_passes(recipe, model, plan, doc, passes)
    return passes
