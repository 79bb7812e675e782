"""Measure what the passes of a run computed (execute/passes.py) into a RunReport.

Nothing here runs the model: each metric kind has one function in MEASURES, which reads the
passes; the report adds each prompt's outcome, the plan, the vectors and the health warnings.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch

from recipe_engine.execute.passes import RunPasses
from recipe_engine.execute.runner import PassResult
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.report_spec import (
    KLBaselineMetric,
    LogitDiffMetric,
    PerplexityMetric,
    TokenProbMetric,
)
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.plan import Plan
from recipe_engine.report.health import garbage_warnings
from recipe_engine.report.metrics import MetricValue, kl_divergence, token_ids, token_mass
from recipe_engine.report.results import (
    ConditionOutcome,
    PromptOutcome,
    RunReport,
    SideOutcome,
)
from recipe_engine.resolve.loaded_model import LoadedModel
from recipe_engine.vectors.build import BuiltVector

__all__ = ["build_report"]


def _top(tokenizer: Any, logits: torch.Tensor, k: int) -> list[tuple[str, int, float]]:
    if k == 0:
        return []
    probs = torch.softmax(logits.float(), dim=-1)
    values, indices = probs.topk(min(k, probs.shape[-1]))
    return [
        (tokenizer.decode([int(i)]), int(i), float(p))
        for p, i in zip(values.tolist(), indices.tolist(), strict=True)
    ]


def _side(tokenizer: Any, top_tokens: int, result: PassResult, row: int) -> SideOutcome:
    text = None
    if result.generated:
        text = tokenizer.decode(result.generated[row], skip_special_tokens=True)
    return SideOutcome(text, _top(tokenizer, result.next_logits[row], top_tokens))


def _conditions(result: PassResult, row: int) -> list[ConditionOutcome]:
    if not result.gates:
        return []
    return [
        ConditionOutcome(g.intervention, g.condition, g.fired, g.scores) for g in result.gates[row]
    ]


def _mean(values: torch.Tensor) -> float:
    return float(values.float().mean()) if values.numel() else math.nan


def _token_prob(
    metric: TokenProbMetric, index: int, tokenizer: Any, run: RunPasses
) -> list[MetricValue]:
    passes = run.sides
    values = []
    for set_name, words in metric.tokens.items():
        ids = token_ids(tokenizer, words)
        scores: dict[str, float] = {}
        rows: dict[str, list[float]] = {}
        for side, result in passes.items():
            if metric.at == "next":
                mass = token_mass(result.next_logits, ids)
                scores[side] = _mean(mass)
                rows[side] = [float(v) for v in mass.float()]
            else:
                # reduced on the device as each step ran (execute/reduce.py)
                masses = result.step_mass[tuple(ids)]
                rows[side] = [_mean(m) for m in masses]
                per_prompt = [_mean(m) for m in masses if len(m)]
                scores[side] = float(sum(per_prompt) / len(per_prompt)) if per_prompt else math.nan
        values.append(
            MetricValue(
                f"token_prob:{set_name}",
                "token_prob",
                scores.get("baseline"),
                scores["steered"],
                {"at": metric.at, "tokens": [tokenizer.decode([i]) for i in ids]},
                prompting=scores.get("prompting"),
                per_prompt=rows,
            )
        )
    return values


def _logit_diff(
    metric: LogitDiffMetric, index: int, tokenizer: Any, run: RunPasses
) -> list[MetricValue]:
    passes = run.sides
    pos, neg = token_ids(tokenizer, metric.positive), token_ids(tokenizer, metric.negative)
    diffs = {
        side: r.next_logits[:, pos].mean(-1) - r.next_logits[:, neg].mean(-1)
        for side, r in passes.items()
    }
    scores = {side: _mean(d) for side, d in diffs.items()}
    value = MetricValue("logit_diff", "logit_diff", scores.get("baseline"), scores["steered"], {})
    value.prompting = scores.get("prompting")
    value.per_prompt = {side: [float(v) for v in d.float()] for side, d in diffs.items()}
    return [value]


def _perplexity(nll: list[float]) -> float:
    return math.exp(sum(nll) / len(nll)) if nll else math.nan


def _kl_baseline(
    metric: KLBaselineMetric, index: int, tokenizer: Any, passes: RunPasses
) -> list[MetricValue]:
    sides = passes.sides
    if metric.text is None:
        kl = kl_divergence(sides["steered"].next_logits, sides["baseline"].next_logits)
        value = MetricValue("kl_baseline", "kl_baseline", 0.0, _mean(kl), {"unit": "nats"})
        value.per_prompt = {"steered": [float(v) for v in kl.float()]}
        if "prompting" in sides:
            prompted = kl_divergence(sides["prompting"].next_logits, sides["baseline"].next_logits)
            value.prompting = _mean(prompted)
        return [value]
    steered, clean = passes.text_logits[index]
    per_position = torch.cat(
        [kl_divergence(s, c) for (_, s), (_, c) in zip(steered, clean, strict=True)]
    )
    detail = {"unit": "nats per position", "texts": passes.texts[index]}
    return [MetricValue("kl_baseline:text", "kl_baseline", 0.0, _mean(per_position), detail)]


def _perplexity_metric(
    metric: PerplexityMetric, index: int, tokenizer: Any, passes: RunPasses
) -> list[MetricValue]:
    scores = {side: _perplexity(nll) for side, nll in passes.text_nll[index].items()}
    detail = {"texts": passes.texts[index]}
    return [
        MetricValue("perplexity", "perplexity", scores.get("baseline"), scores["steered"], detail)
    ]


# One function per metric kind, called as (metric, its index in report.metrics, the tokenizer,
# the passes); each returns the metric's values (token_prob: one per token set).
Measure = Callable[[Any, int, Any, RunPasses], list[MetricValue]]
MEASURES: dict[type, Measure] = {
    TokenProbMetric: _token_prob,
    LogitDiffMetric: _logit_diff,
    KLBaselineMetric: _kl_baseline,
    PerplexityMetric: _perplexity_metric,
}


# Metrics that are a mean over the run's prompts, so a prompt group's rows are the same metric
# over its prompts alone (text metrics read other texts; judged ones their own passes).
_PER_PROMPT = (TokenProbMetric, LogitDiffMetric)


def _rows(result: PassResult, rows: list[int]) -> PassResult:
    def pick(items: list[Any]) -> list[Any]:
        return [items[i] for i in rows] if items else []

    return PassResult(
        result.next_logits[rows],
        pick(result.generated),
        pick(result.step_finite),
        {key: pick(masses) for key, masses in result.step_mass.items()},
        pick(result.step_logits),
        pick(result.gates),
    )


def group_metrics(
    recipe: Recipe, tokenizer: Any, passes: RunPasses
) -> dict[str, list[MetricValue]]:
    """Per prompt group (issue 24 item 7: metrics were pooled over the groups), the metrics that
    are means over prompts, over that group's prompts; prompts outside any group count as
    "(no group)". Empty without groups, or with run.samples > 1 (rows are samples there)."""
    if not any(passes.groups) or passes.samples != 1:
        return {}
    found: dict[str, list[MetricValue]] = {}
    for name in dict.fromkeys(passes.groups):
        rows = [i for i, g in enumerate(passes.groups) if g == name]
        sides = {side: _rows(result, rows) for side, result in passes.sides.items()}
        sub = RunPasses([passes.prompts[i] for i in rows], sides, passes.started)
        values: list[MetricValue] = []
        for index, metric in enumerate(recipe.report.metrics):
            prompts_only = isinstance(metric, KLBaselineMetric) and metric.text is None
            if isinstance(metric, _PER_PROMPT) or prompts_only:
                values.extend(MEASURES[type(metric)](metric, index, tokenizer, sub))
        found[name if name is not None else "(no group)"] = values
    return found


def _vectors(
    model: LoadedModel, vectors: dict[str, BuiltVector], vector_tokens: int
) -> dict[str, dict[str, Any]]:
    """Each vector's provenance and norm, and (report.vector_tokens) the tokens it moves."""
    info: dict[str, dict[str, Any]] = {
        name: {**v.provenance, "norm": round(float(v.tensor.norm()), 6)}
        for name, v in vectors.items()
    }
    if vector_tokens:
        from recipe_engine.vectors.inspect import token_effects

        for name, v in vectors.items():
            info[name]["tokens"] = token_effects(model, v.tensor, vector_tokens)
    return info


def build_report(
    recipe: Recipe,
    doc: LoadedDocument,
    model: LoadedModel,
    vectors: dict[str, BuiltVector],
    plan: Plan,
    passes: RunPasses,
    timing: dict[str, float],
    measures: Mapping[type, Measure] | None = None,
) -> RunReport:
    """Measure the passes of a run. `timing` holds the compile stages (load_s, vectors_s).
    `measures`: the metric kinds a later stage measures (the text metrics of evaluate/, which
    calls this with them: evaluate/sides.py), besides MEASURES."""
    known = {**MEASURES, **(measures or {})}
    tokenizer, sides = model.tokenizer, passes.sides
    metrics: list[MetricValue] = []
    top = recipe.report.top_tokens
    with model.lock:  # the tokenizer is shared (LoadedModel)
        for index, metric in enumerate(recipe.report.metrics):
            if type(metric) not in known:  # a text metric measured without the evaluate stage
                raise TypeError(f"no measure for {type(metric).__name__}: evaluate/sides.py")
            metrics.extend(known[type(metric)](metric, index, tokenizer, passes))
        outcomes = [
            PromptOutcome(
                prompt,
                _side(tokenizer, top, sides["steered"], row),
                _side(tokenizer, top, sides["baseline"], row) if "baseline" in sides else None,
                passes.groups[row] if passes.groups else None,
                _conditions(sides["steered"], row),
                _side(tokenizer, top, sides["prompting"], row) if "prompting" in sides else None,
            )
            for row, prompt in enumerate(passes.prompts)
        ]
        by_group = group_metrics(recipe, tokenizer, passes)
    shape = model.shape
    return RunReport(
        recipe_name=recipe.name,
        recipe_path=doc.display,
        model={
            "id": recipe.model.id,
            "family": model.adapter.family,
            "layers": shape.n_layers,
            "hidden_size": shape.hidden_size,
            "heads": shape.n_heads,
        },
        mode=recipe.run.mode,
        plan=plan.describe(),
        vectors=_vectors(model, vectors, recipe.report.vector_tokens),
        prompts=outcomes,
        metrics=metrics,
        timing={**timing, "run_s": time.perf_counter() - passes.started},
        passes=sides,
        warnings=garbage_warnings(metrics, plan, len(tokenizer)),
        group_metrics=by_group,
    )
