"""Layer x strength sweeps: run one intervention over a grid, measure effect and side effect,
and recommend a setting.

For each layer L and strength s, intervention N of the recipe is set to `layers: L`,
`strength: s`; with `follow_layer` (the default) the vector it uses, when extracted from
activations, is re-read at layer L too (the usual way to compare layers; the vector cache makes
reruns cheap). The unsteered baseline is computed once.

Recommendation rule (documented, deterministic): among settings whose side effect (mean KL of
steered vs baseline next-token distributions) is within `kl_budget`, take the one with the
largest effect (the change of the effect metric, in the direction of the strengths' sign);
ties go to the smaller |strength|, then the lower layer. None if nothing fits the budget.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recipe_engine.errors import NumericalFailure, UsageError

if TYPE_CHECKING:
    from recipe_engine.format.recipe import Recipe
    from recipe_engine.report.results import RunReport

__all__ = ["SweepPoint", "SweepResult", "recommend", "run_sweep"]


@dataclass
class SweepPoint:
    layer: int
    strength: float
    effect: float  # steered - baseline of the effect metric
    steered: float
    kl: float

    def to_json(self) -> dict[str, Any]:
        def clean(x: float) -> float | str:
            return round(x, 6) if math.isfinite(x) else str(x)

        return {
            "layer": self.layer,
            "strength": self.strength,
            "effect": clean(self.effect),
            "steered": clean(self.steered),
            "kl": clean(self.kl),
        }


@dataclass
class SweepResult:
    recipe: str
    effect_metric: str
    baseline: float
    kl_budget: float
    points: list[SweepPoint] = field(default_factory=list)
    recommended: SweepPoint | None = None
    cost_metric: str = "kl_baseline"
    failures: list[str] = field(default_factory=list)  # cells that produced NaN/Inf, one line each

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "recipe": self.recipe,
            "effect_metric": self.effect_metric,
            "baseline": round(self.baseline, 6),
            "kl_budget": self.kl_budget,
            "cost_metric": self.cost_metric,
            "rule": "largest effect with KL <= kl_budget; ties: smaller |strength|, lower layer",
            "points": [p.to_json() for p in self.points],
            "recommended": self.recommended.to_json() if self.recommended else None,
            "failures": list(self.failures),
        }


def recommend(points: list[SweepPoint], kl_budget: float, sign: float) -> SweepPoint | None:
    fitting = [p for p in points if math.isfinite(p.effect) and p.kl <= kl_budget]
    if not fitting:
        return None
    return min(fitting, key=lambda p: (-sign * p.effect, abs(p.strength), p.layer))


def _cell_overrides(recipe: Recipe) -> list[str]:
    """What every cell sets besides its layer and strength: the unsteered baseline, and a
    kl_baseline metric (the side effect) when the recipe has none."""
    extra = (
        [
            "report.metrics="
            + json.dumps(
                [m.model_dump(mode="json") for m in recipe.report.metrics]
                + [{"kind": "kl_baseline"}]
            )
        ]
        if not any(m.kind == "kl_baseline" for m in recipe.report.metrics)
        else []
    )
    extra.append("run.compare_baseline=true")
    return extra


def _measure(
    report: RunReport, layer: int, strength: float, effect_name: str | None
) -> tuple[SweepPoint, str, str, float]:
    """One cell's point, and the effect metric, cost metric and baseline value it used."""
    metrics = {m.name: m for m in report.metrics}
    if effect_name is None:
        candidates = [n for n in metrics if not n.startswith("kl_baseline")]
        if not candidates:
            raise UsageError(
                "the recipe has no effect metric: add one under report.metrics "
                "(e.g. token_prob) or pass --effect"
            )
        effect_name = candidates[0]
    if effect_name not in metrics:
        raise UsageError(f"no metric {effect_name!r} (have: {', '.join(metrics)})")
    chosen = metrics[effect_name]
    # KL over neutral texts (a kl_baseline metric with `text:`) is the better cost: the
    # run prompts' next-token KL also counts the intended effect.
    cost_name = "kl_baseline:text" if "kl_baseline:text" in metrics else "kl_baseline"
    baseline_value = chosen.baseline if chosen.baseline is not None else math.nan
    point = SweepPoint(
        layer,
        strength,
        (chosen.delta if chosen.delta is not None else math.nan),
        chosen.steered,
        metrics[cost_name].steered,
    )
    return point, effect_name, cost_name, baseline_value


def run_sweep(
    path: str | Path,
    layers: list[int],
    strengths: list[float],
    *,
    intervention: int = 0,
    effect: str | None = None,
    kl_budget: float = 0.5,
    follow_layer: bool = True,
    overrides: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SweepResult:
    from recipe_engine.pipeline import compile_recipe, load_recipe, run_recipe

    if not layers or not strengths:
        raise UsageError("a sweep needs at least one layer and one strength")
    base = load_recipe(path, overrides=overrides)
    recipe = base.recipe
    if not 0 <= intervention < len(recipe.interventions):
        raise UsageError(f"the recipe has no intervention {intervention}")
    item = recipe.interventions[intervention]
    vector = recipe.vectors.get(item.vector or "")
    extra = _cell_overrides(recipe)
    total = len(layers) * len(strengths)
    points: list[SweepPoint] = []
    baseline_pass: Any = None
    baseline_value = math.nan
    effect_name = effect
    cost_name = "kl_baseline"
    failures: list[str] = []
    for layer in layers:
        for strength in strengths:
            sets = [
                *(overrides or []),
                *extra,
                f"interventions.{intervention}.layers={layer}",
                f"interventions.{intervention}.strength={strength}",
            ]
            if follow_layer and vector is not None and hasattr(vector, "layer"):
                sets.append(f"vectors.{item.vector}.layer={layer}")
            loaded = load_recipe(path, overrides=sets)
            try:
                report = run_recipe(compile_recipe(loaded), baseline=baseline_pass)
            except NumericalFailure as exc:
                # One blown-up cell (NaN/Inf at a large strength) is a finding, not the end
                # of the sweep: it is recorded as NaN, never recommended, and reported.
                failures.append(f"layer {layer}, strength {strength:g}: {exc}")
                points.append(SweepPoint(layer, strength, math.nan, math.nan, math.nan))
                if progress:
                    progress(len(points), total)
                continue
            baseline_pass = report.passes["baseline"]
            point, effect_name, cost_name, baseline_value = _measure(
                report, layer, strength, effect_name
            )
            points.append(point)
            if progress:
                progress(len(points), total)
    sign = 1.0 if sum(strengths) >= 0 else -1.0
    if effect_name is None:  # every cell blew up: there is no table to show
        raise NumericalFailure(f"every setting of the sweep failed; the first: {failures[0]}")
    return SweepResult(
        recipe.name,
        effect_name,
        baseline_value,
        kl_budget,
        points,
        recommend(points, kl_budget, sign),
        cost_name,
        failures,
    )
