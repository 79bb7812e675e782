"""Layer x strength sweeps: run one intervention over a grid, measure effect and side effect,
and recommend a setting.

For each layer L and strength s, intervention N of the recipe is set to `layers: L`,
`strength: s`; with `follow_layer` (the default) the vector it uses, when extracted from
activations, is re-read at layer L too (the usual way to compare layers; the vector cache makes
reruns cheap). The unsteered baseline is computed once.

Recommendation rule (documented, deterministic): the effect of a setting is the change of the
effect metric (steered - baseline), counted in the direction asked: `up` (the default: the
metric names what you want more of, e.g. token_prob:negative) or `down`. Among settings whose
side effect (KL, see SweepResult.cost_metric) is within `kl_budget` and whose effect in that
direction is positive, take the largest; ties go to the smaller |strength|, then the lower
layer. The sign of the strengths plays no part: -3 beats -1 when it moves the metric further.
None if no setting fits the budget or none moves the metric the asked way.

Ranking by the text metrics (SweepRanking): with `fluency_budget`, a setting whose steered
`fluency` (perplexity of its continuations under the unsteered model) is above the budget is not
recommended; with `controls: N`, each cell also runs N random vectors of the steering vector's
norm (report.controls), and a setting is recommended only if its effect clears the control band:
(effect - control mean) / control sd >= min_z in the direction asked.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recipe_engine.errors import NumericalFailure, UsageError
from recipe_engine.sweep.axes import (
    metric_names,
    parse_layer_items,
    resolve_sweep_layers,
    set_flags,
)

if TYPE_CHECKING:
    from recipe_engine.format.recipe import Recipe
    from recipe_engine.pipeline import LoadedRecipe
    from recipe_engine.report.results import RunReport

__all__ = ["DIRECTIONS", "SweepPoint", "SweepRanking", "SweepResult", "recommend", "run_sweep"]

DIRECTIONS = ("up", "down")


@dataclass(frozen=True)
class SweepRanking:
    """What a recommended setting must also satisfy (see the module docstring)."""

    fluency_budget: float | None = None  # largest steered `fluency` (perplexity)
    controls: int = 0  # random controls per cell
    min_z: float = 2.0  # control sds the effect must clear (with controls)


@dataclass
class SweepPoint:
    layer: int
    strength: float
    effect: float  # steered - baseline of the effect metric
    steered: float
    kl: float
    fluency: float | None = None  # steered `fluency`, when the recipe reports it
    control_mean: float | None = None  # effect of the random controls (control - baseline)
    control_sd: float | None = None
    # `--set` lines that make `steer run` measure this cell (the user's --set, the layer and
    # strength, and the vector's layer when it follows the layer): issue 24 item 4
    sets: tuple[str, ...] = ()

    @property
    def z(self) -> float | None:
        """The effect's distance from the control band, in control sds."""
        mean, sd = self.control_mean, self.control_sd
        if mean is None or sd is None or not math.isfinite(self.effect):
            return None
        if sd == 0:  # the controls agree exactly: any difference is infinitely far
            return 0.0 if self.effect == mean else math.copysign(math.inf, self.effect - mean)
        return (self.effect - mean) / sd

    def set_flags(self) -> str:
        """This cell as `steer run RECIPE` flags."""
        return set_flags(self.sets)

    def to_json(self) -> dict[str, Any]:
        def clean(x: float | None) -> float | str | None:
            if x is None:
                return None
            return round(x, 6) if math.isfinite(x) else str(x)

        return {
            "layer": self.layer,
            "strength": self.strength,
            "effect": clean(self.effect),
            "steered": clean(self.steered),
            "kl": clean(self.kl),
            "fluency": clean(self.fluency),
            "control_mean": clean(self.control_mean),
            "control_sd": clean(self.control_sd),
            "z": clean(self.z),
            "sets": list(self.sets),
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
    direction: str = "up"
    # validation warnings of the cells (e.g. strength-ignored: a zero op's strength was swept)
    warnings: list[str] = field(default_factory=list)
    ranking: SweepRanking = field(default_factory=SweepRanking)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "recipe": self.recipe,
            "effect_metric": self.effect_metric,
            "baseline": round(self.baseline, 6),
            "kl_budget": self.kl_budget,
            "cost_metric": self.cost_metric,
            "direction": self.direction,
            "rule": "largest effect in the direction asked, with KL <= kl_budget (and fluency "
            "<= fluency_budget, effect >= min_z control sds from the control mean, when given); "
            "ties: smaller |strength|, lower layer",
            "fluency_budget": self.ranking.fluency_budget,
            "controls": self.ranking.controls,
            "min_z": self.ranking.min_z if self.ranking.controls else None,
            "points": [p.to_json() for p in self.points],
            "recommended": self.recommended.to_json() if self.recommended else None,
            "failures": list(self.failures),
            "warnings": list(self.warnings),
        }


def recommend(
    points: list[SweepPoint],
    kl_budget: float,
    direction: str = "up",
    ranking: SweepRanking | None = None,
) -> SweepPoint | None:
    """The rule of the module docstring: largest effect in `direction` within the budget."""
    if direction not in DIRECTIONS:
        raise UsageError(f"direction {direction!r}: expected one of {', '.join(DIRECTIONS)}")
    sign = 1.0 if direction == "up" else -1.0
    rank = ranking or SweepRanking()

    def allowed(p: SweepPoint) -> bool:
        if rank.fluency_budget is not None and not (
            p.fluency is not None and p.fluency <= rank.fluency_budget
        ):
            return False
        if rank.controls:
            z = p.z
            return z is not None and sign * z >= rank.min_z
        return True

    moving = [
        p
        for p in points
        if math.isfinite(p.effect) and p.kl <= kl_budget and sign * p.effect > 0 and allowed(p)
    ]
    if not moving:
        return None
    return min(moving, key=lambda p: (-sign * p.effect, abs(p.strength), p.layer))


def _cell_overrides(recipe: Recipe, ranking: SweepRanking) -> list[str]:
    """What every cell sets besides its layer and strength: the unsteered baseline, a
    kl_baseline metric (the side effect) when the recipe has none, the random controls."""
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
    extra.append("report.prompt_baseline=null")  # a sweep compares settings, not prompting
    if ranking.controls:
        extra.append(f"report.controls={{random: {ranking.controls}}}")
    elif recipe.report.controls is not None:
        extra.append("report.controls=null")  # the recipe's own controls: not per cell
    return extra


def _measure(
    report: RunReport, layer: int, strength: float, effect_name: str
) -> tuple[SweepPoint, str, float]:
    """One cell's point, and the cost metric and baseline value it used."""
    metrics = {m.name: m for m in report.metrics}
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
        fluency=metrics["fluency"].steered if "fluency" in metrics else None,
    )
    if chosen.controls:  # in effect units: each control's value minus the baseline
        point.control_mean = (chosen.control_mean or 0.0) - baseline_value
        point.control_sd = chosen.control_sd
    return point, cost_name, baseline_value


def run_sweep(
    path: str | Path,
    layers: Sequence[int | str],
    strengths: list[float],
    *,
    intervention: int = 0,
    effect: str | None = None,
    kl_budget: float = 0.5,
    direction: str = "up",
    follow_layer: bool = True,
    overrides: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    allow_outside_root: bool = False,
    ranking: SweepRanking | None = None,
) -> SweepResult:
    from recipe_engine.pipeline import compile_recipe, load_recipe, run_recipe

    _check_axes(layers, strengths, direction)
    base = load_recipe(path, overrides=overrides, allow_outside_root=allow_outside_root)
    recipe = base.recipe
    if not 0 <= intervention < len(recipe.interventions):
        raise UsageError(f"the recipe has no intervention {intervention}")
    # Every flag is checked before the first cell loads the model.
    layer_indices = _model_layers(base, parse_layer_items(layers))
    effect_name = _effect_metric(recipe, effect)
    item = recipe.interventions[intervention]
    vector = recipe.vectors.get(item.vector or "")
    rank = _check_ranking(ranking or SweepRanking(), recipe)
    extra = _cell_overrides(recipe, rank)
    total = len(layer_indices) * len(strengths)
    points: list[SweepPoint] = []
    baseline_pass: Any = None
    baseline_value = math.nan
    cost_name = "kl_baseline"
    failures: list[str] = []
    warned: dict[tuple[str, str], str] = {}  # one line per (code, pointer), not per cell
    for layer in layer_indices:
        for strength in strengths:
            sets = [
                *(overrides or []),
                *extra,
                f"interventions.{intervention}.layers={layer}",
                f"interventions.{intervention}.strength={strength}",
            ]
            if follow_layer and vector is not None and hasattr(vector, "layer"):
                sets.append(f"vectors.{item.vector}.layer={layer}")
            own = (*(overrides or []), *sets[len(overrides or []) + len(extra) :])
            loaded = load_recipe(path, overrides=sets, allow_outside_root=allow_outside_root)
            _collect_warnings(loaded, sets[len(overrides or []) :], warned)
            try:
                report = run_recipe(compile_recipe(loaded), baseline=baseline_pass)
            except NumericalFailure as exc:
                # One blown-up cell (NaN/Inf at a large strength) is a finding, not the end
                # of the sweep: it is recorded as NaN, never recommended, and reported.
                failures.append(f"layer {layer}, strength {strength:g}: {exc}")
                points.append(SweepPoint(layer, strength, math.nan, math.nan, math.nan, sets=own))
                if progress:
                    progress(len(points), total)
                continue
            baseline_pass = report.passes["baseline"]
            point, cost_name, baseline_value = _measure(report, layer, strength, effect_name)
            point.sets = own
            points.append(point)
            if progress:
                progress(len(points), total)
    if len(failures) == len(points):  # every cell blew up: there is no table to show
        raise NumericalFailure(f"every setting of the sweep failed; the first: {failures[0]}")
    return SweepResult(
        recipe.name,
        effect_name,
        baseline_value,
        kl_budget,
        points,
        recommend(points, kl_budget, direction, rank),
        cost_name,
        failures,
        direction,
        list(warned.values()),
        rank,
    )


def _check_ranking(ranking: SweepRanking, recipe: Recipe) -> SweepRanking:
    if ranking.fluency_budget is not None and "fluency" not in metric_names(recipe):
        raise UsageError(
            "--fluency-budget needs a fluency metric: add {kind: fluency} to report.metrics "
            "(generate or edit mode)"
        )
    if ranking.controls < 0 or ranking.controls == 1:
        raise UsageError(f"--controls {ranking.controls}: give 0 (none) or 2 and more (8 advised)")
    return ranking


def _check_axes(layers: Sequence[int | str], strengths: list[float], direction: str) -> None:
    """The flags' own mistakes, said as such (not as a recipe line's type error)."""
    if not layers or not strengths:
        raise UsageError("a sweep needs at least one layer and one strength")
    for strength in strengths:
        if not math.isfinite(strength):
            raise UsageError(f"--strengths {strength}: a strength must be a finite number")
    if direction not in DIRECTIONS:
        raise UsageError(f"direction {direction!r}: expected one of {', '.join(DIRECTIONS)}")


def _collect_warnings(
    loaded: LoadedRecipe, grid_sets: list[str], warned: dict[tuple[str, str], str]
) -> None:
    """A cell's validation warnings, once per (code, pointer); a warning about a value the
    sweep set itself (the grid) is labelled as such, not as a `--set` the user never typed."""
    own = {f"command line (--set {t})" for t in grid_sets}
    for diagnostic in loaded.warnings:
        text = diagnostic.format()
        if diagnostic.location is not None and diagnostic.location.file in own:
            text = f"sweep grid: {diagnostic.pointer}: warning: {diagnostic.message}"
            text += f" [{diagnostic.code}]"
        warned.setdefault((diagnostic.code, diagnostic.pointer), text)


def _model_layers(base: LoadedRecipe, items: list[int | str]) -> list[int]:
    """--layers resolved as a recipe's `layers:` against the model's config (no weights)."""
    from recipe_engine.model_config import ModelUnavailable, read_model_shape

    spec, doc = base.recipe.model, base.document
    try:
        shape = read_model_shape(spec.id, spec.revision, doc.base_dir("/model/id"))
    except ModelUnavailable:
        # A remote model whose config is not cached here: plain indices pass as written and
        # are checked when the run starts; forms that need the layer count cannot be resolved.
        if all(isinstance(item, int) and item >= 0 for item in items):
            return [int(item) for item in dict.fromkeys(items)]
        raise UsageError(
            f"--layers {' '.join(map(str, items))}: ranges, `all` and negative indices need the "
            f"model's layer count, and {spec.id!r}'s config is not cached here; give indices"
        ) from None
    return resolve_sweep_layers(items, shape.n_layers)


def _effect_metric(recipe: Recipe, effect: str | None) -> str:
    """The effect metric's name, checked against the names the recipe's report will have."""
    from recipe_engine.validate.schema_errors import did_you_mean

    available = metric_names(recipe)
    if not any(m.kind == "kl_baseline" for m in recipe.report.metrics):
        available.append("kl_baseline")  # the sweep adds it (run_sweep's `extra`)
    names = [n for n in available if not n.startswith("kl_baseline")]
    if effect is None:
        if not names:
            raise UsageError(
                "the recipe has no effect metric: add one under report.metrics "
                "(e.g. token_prob) or pass --effect"
            )
        return names[0]
    if effect not in available:
        raise UsageError(
            f"--effect {effect!r}: the recipe reports no such metric (have: "
            f"{', '.join(available)}){did_you_mean(effect, available)}"
        )
    return effect
