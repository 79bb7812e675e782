"""The sides a run is evaluated on, and their measurement: what `run`, `sweep`, `eval` and the
random controls share.

    evaluate_passes   the execute stage's passes (baseline, steered, neutral texts), then the
                      prompting side (report.prompt_baseline: the unsteered model answering
                      each prompt with the instruction added, prompting.py), then every side's
                      continuations judged by the unsteered model (judge.py)
    measure_run       report/build.py's measurement, with the text metrics (text_metrics.py)
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from recipe_engine.evaluate.instruction_judge import load_judge
from recipe_engine.evaluate.judge import Judged, judge_side
from recipe_engine.evaluate.prompting import prompting_texts
from recipe_engine.evaluate.text_metrics import TEXT_MEASURES
from recipe_engine.execute.passes import Progress, RunPasses, run_pass, run_passes
from recipe_engine.execute.runner import PassResult
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.report_spec import TEXT_METRICS, ConceptMetric, InstructionMetric
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.load.paths import resolve_reference
from recipe_engine.plan import Plan
from recipe_engine.report.build import build_report
from recipe_engine.report.results import RunReport
from recipe_engine.resolve.loaded_model import LoadedModel
from recipe_engine.vectors.build import BuiltVector

__all__ = ["evaluate_passes", "judge_passes", "measure_run"]


def evaluate_passes(
    recipe: Recipe,
    model: LoadedModel,
    plan: Plan,
    doc: LoadedDocument,
    progress: Progress | None = None,
    baseline: PassResult | None = None,
    part_plans: list[Plan] | None = None,
    vectors: Mapping[str, torch.Tensor] | None = None,
    judged_baseline: Judged | None = None,
) -> RunPasses:
    """Every pass of a recipe: execute/passes.run_passes, the prompting side, the judging.
    `baseline` (and `judged_baseline`, its judged continuations) reuse an unsteered pass of the
    same prompts (sweeps, controls). `vectors`: the recipe's built vectors, which concept
    probes read."""
    prompted = prompting_texts(recipe, model, doc)  # before any pass: its errors come first
    passes = run_passes(recipe, model, plan, doc, progress, baseline, part_plans)
    if recipe.report.prompt_baseline is not None:
        passes.sides["prompting"] = run_pass(recipe, model, Plan(), prompted, progress, "prompting")
    judge_passes(recipe, model, doc, passes, vectors, judged_baseline, progress)
    return passes


def judge_passes(
    recipe: Recipe,
    model: LoadedModel,
    doc: LoadedDocument,
    passes: RunPasses,
    vectors: Mapping[str, torch.Tensor] | None = None,
    judged_baseline: Judged | None = None,
    progress: Progress | None = None,
) -> None:
    """Fill passes.judged: each side's continuations as the unsteered model reads them (only
    when the recipe has metrics on generated text)."""
    if not any(isinstance(m, TEXT_METRICS) for m in recipe.report.metrics):
        return
    classifiers = {
        index: resolve_reference(m.classifier, doc.base_dir(f"/report/metrics/{index}/classifier"))
        for index, m in enumerate(recipe.report.metrics)
        if isinstance(m, ConceptMetric) and m.classifier is not None
    }
    judges = {
        index: load_judge(
            m.judge, doc.base_dir(f"/report/metrics/{index}/judge"), recipe.model.device
        )
        for index, m in enumerate(recipe.report.metrics)
        if isinstance(m, InstructionMetric) and m.judge is not None
    }
    for side, result in passes.sides.items():
        if side == "baseline" and judged_baseline is not None:
            passes.judged[side] = judged_baseline
            continue
        if progress:
            progress(f"judging {side}", 0, 1)
        passes.judged[side] = judge_side(
            recipe, model, vectors or {}, passes.prompts, result.generated, classifiers, judges
        )
        if progress:
            progress(f"judging {side}", 1, 1)


def measure_run(
    recipe: Recipe,
    doc: LoadedDocument,
    model: LoadedModel,
    vectors: dict[str, BuiltVector],
    plan: Plan,
    passes: RunPasses,
    timing: dict[str, float],
) -> RunReport:
    """The run's report: every metric, the text metrics included."""
    return build_report(recipe, doc, model, vectors, plan, passes, timing, TEXT_MEASURES)
