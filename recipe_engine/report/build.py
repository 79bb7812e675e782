"""Run the baseline and steered passes of a compiled recipe and measure the difference."""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from recipe_engine.errors import NumericalFailure
from recipe_engine.execute.runner import (
    PassResult,
    generate_pass,
    score_texts,
    text_logits,
    trace_pass,
)
from recipe_engine.format.report_spec import (
    KLBaselineMetric,
    LogitDiffMetric,
    PerplexityMetric,
    TokenProbMetric,
)
from recipe_engine.plan import Plan
from recipe_engine.report.health import (
    garbage_warnings,
    is_non_finite_error,
    likely_cause,
    require_finite,
)
from recipe_engine.report.metrics import MetricValue, kl_divergence, token_ids, token_mass
from recipe_engine.report.results import PromptOutcome, RunReport, SideOutcome
from recipe_engine.vectors.build import resolve_prompts

__all__ = ["build_report"]


def _run_pass(
    compiled: Any, plan: Plan, prompts: list[str], progress: Any, label: str
) -> PassResult:
    recipe = compiled.recipe
    model = compiled.model
    run = recipe.run
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if progress:
            progress(label, done[0], len(prompts))

    dtype = getattr(model.hf, "dtype", None)
    if model.backend == "vllm":
        from recipe_engine.execute.vllm_runner import vllm_pass

        result = vllm_pass(
            model, plan, prompts, run.generation, trace_only=run.mode == "trace", progress=tick
        )
    elif run.mode == "trace":
        result = trace_pass(model, plan, prompts, run.batch_size, tick)
    else:
        try:
            result = generate_pass(
                model,
                plan,
                prompts,
                run.generation,
                run.batch_size,
                persistent=run.mode == "edit",
                progress=tick,
            )
        except RuntimeError as exc:  # the sampler refuses NaN/Inf probabilities
            if not is_non_finite_error(exc):
                raise
            raise NumericalFailure(
                f"the {label} model produced NaN/Inf probabilities while sampling: "
                f"{likely_cause(plan, dtype)}"
            ) from exc
    require_finite(result.next_logits, "next-token logits of the prompts", plan, dtype)
    require_finite(result.step_logits, "generated steps", plan, dtype)
    return result


def _top(tokenizer: Any, logits: torch.Tensor, k: int) -> list[tuple[str, int, float]]:
    if k == 0:
        return []
    probs = torch.softmax(logits.float(), dim=-1)
    values, indices = probs.topk(min(k, probs.shape[-1]))
    return [
        (tokenizer.decode([int(i)]), int(i), float(p))
        for p, i in zip(values.tolist(), indices.tolist(), strict=True)
    ]


def _side(compiled: Any, result: PassResult, row: int) -> SideOutcome:
    tokenizer = compiled.model.tokenizer
    text = None
    if result.generated:
        text = tokenizer.decode(result.generated[row], skip_special_tokens=True)
    return SideOutcome(
        text, _top(tokenizer, result.next_logits[row], compiled.recipe.report.top_tokens)
    )


def _mean(values: torch.Tensor) -> float:
    return float(values.float().mean()) if values.numel() else math.nan


def _token_prob(
    metric: TokenProbMetric, tokenizer: Any, passes: dict[str, PassResult]
) -> list[MetricValue]:
    values = []
    for set_name, words in metric.tokens.items():
        ids = token_ids(tokenizer, words)
        scores: dict[str, float] = {}
        for side, result in passes.items():
            if metric.at == "next":
                scores[side] = _mean(token_mass(result.next_logits, ids))
            else:
                per_prompt = [_mean(token_mass(s, ids)) for s in result.step_logits if len(s)]
                scores[side] = float(sum(per_prompt) / len(per_prompt)) if per_prompt else math.nan
        values.append(
            MetricValue(
                f"token_prob:{set_name}",
                "token_prob",
                scores.get("baseline"),
                scores["steered"],
                {"at": metric.at, "tokens": [tokenizer.decode([i]) for i in ids]},
            )
        )
    return values


def _logit_diff(
    metric: LogitDiffMetric, tokenizer: Any, passes: dict[str, PassResult]
) -> MetricValue:
    pos, neg = token_ids(tokenizer, metric.positive), token_ids(tokenizer, metric.negative)
    scores = {
        side: _mean(r.next_logits[:, pos].mean(-1) - r.next_logits[:, neg].mean(-1))
        for side, r in passes.items()
    }
    return MetricValue("logit_diff", "logit_diff", scores.get("baseline"), scores["steered"], {})


def _perplexity(nll: list[float]) -> float:
    return math.exp(sum(nll) / len(nll)) if nll else math.nan


def build_report(
    compiled: Any, progress: Any = None, baseline: PassResult | None = None
) -> RunReport:
    """Run and measure. `baseline` reuses an unsteered pass of the same prompts (sweeps)."""
    recipe, model, doc = compiled.recipe, compiled.model, compiled.loaded.document
    prompts = resolve_prompts(recipe.run.prompts, doc, "/run/prompts", doc.path.parent)
    start = time.perf_counter()
    passes: dict[str, PassResult] = {}
    if baseline is not None:
        passes["baseline"] = baseline
    elif recipe.run.compare_baseline:
        passes["baseline"] = _run_pass(compiled, Plan(), prompts, progress, "baseline")
    passes["steered"] = _run_pass(compiled, compiled.plan, prompts, progress, "steered")
    metrics: list[MetricValue] = []
    for index, metric in enumerate(recipe.report.metrics):
        if isinstance(metric, TokenProbMetric):
            metrics.extend(_token_prob(metric, model.tokenizer, passes))
        elif isinstance(metric, LogitDiffMetric):
            metrics.append(_logit_diff(metric, model.tokenizer, passes))
        elif isinstance(metric, KLBaselineMetric) and metric.text is None:
            kl = kl_divergence(passes["steered"].next_logits, passes["baseline"].next_logits)
            metrics.append(
                MetricValue("kl_baseline", "kl_baseline", 0.0, _mean(kl), {"unit": "nats"})
            )
        elif isinstance(metric, KLBaselineMetric):
            texts = resolve_prompts(
                metric.text, doc, f"/report/metrics/{index}/text", doc.path.parent
            )
            size = recipe.run.batch_size
            steered = text_logits(model, compiled.plan, texts, size)
            clean = text_logits(model, Plan(), texts, size)
            dtype = getattr(model.hf, "dtype", None)
            require_finite([s for _, s in steered], "neutral texts", compiled.plan, dtype)
            require_finite([c for _, c in clean], "neutral texts", Plan(), dtype)
            per_position = torch.cat(
                [kl_divergence(s, c) for (_, s), (_, c) in zip(steered, clean, strict=True)]
            )
            metrics.append(
                MetricValue(
                    "kl_baseline:text",
                    "kl_baseline",
                    0.0,
                    _mean(per_position),
                    {"unit": "nats per position", "texts": len(texts)},
                )
            )
        elif isinstance(metric, PerplexityMetric):
            texts = resolve_prompts(
                metric.text, doc, f"/report/metrics/{index}/text", doc.path.parent
            )
            sides = {"steered": compiled.plan}
            if recipe.run.compare_baseline:
                sides["baseline"] = Plan()
            scores = {
                side: _perplexity(score_texts(model, plan, texts, recipe.run.batch_size))
                for side, plan in sides.items()
            }
            metrics.append(
                MetricValue(
                    "perplexity",
                    "perplexity",
                    scores.get("baseline"),
                    scores["steered"],
                    {"texts": len(texts)},
                )
            )
    outcomes = [
        PromptOutcome(
            prompt,
            _side(compiled, passes["steered"], row),
            _side(compiled, passes["baseline"], row) if "baseline" in passes else None,
        )
        for row, prompt in enumerate(prompts)
    ]
    vectors: dict[str, dict[str, Any]] = {
        name: {**v.provenance, "norm": round(float(v.tensor.norm()), 6)}
        for name, v in compiled.vectors.items()
    }
    if recipe.report.vector_tokens:
        from recipe_engine.vectors.inspect import token_effects

        for name, v in compiled.vectors.items():
            vectors[name]["tokens"] = token_effects(model, v.tensor, recipe.report.vector_tokens)
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
        plan=compiled.plan.describe(),
        vectors=vectors,
        prompts=outcomes,
        metrics=metrics,
        timing={**compiled.timing, "run_s": time.perf_counter() - start},
        passes=passes,
        warnings=garbage_warnings(metrics, compiled.plan, len(model.tokenizer)),
    )
