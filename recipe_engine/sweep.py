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

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recipe_engine.atomic import write_files_atomic
from recipe_engine.errors import NumericalFailure, UsageError

__all__ = ["SweepPoint", "SweepResult", "recommend", "run_sweep", "write_sweep"]


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
    # validation warnings of the cells (e.g. strength-ignored: a zero op's strength was swept)
    warnings: list[str] = field(default_factory=list)

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
            "warnings": list(self.warnings),
        }


def recommend(points: list[SweepPoint], kl_budget: float, sign: float) -> SweepPoint | None:
    fitting = [p for p in points if math.isfinite(p.effect) and p.kl <= kl_budget]
    if not fitting:
        return None
    return min(fitting, key=lambda p: (-sign * p.effect, abs(p.strength), p.layer))


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
    from recipe_engine.api import compile_recipe, load_recipe, run_recipe

    if not layers or not strengths:
        raise UsageError("a sweep needs at least one layer and one strength")
    for strength in strengths:  # the flag's fault, said so (not a recipe line's type error)
        if not math.isfinite(strength):
            raise UsageError(f"--strengths {strength}: a strength must be a finite number")
    base = load_recipe(path, overrides=overrides)
    recipe = base.recipe
    if not 0 <= intervention < len(recipe.interventions):
        raise UsageError(f"the recipe has no intervention {intervention}")
    item = recipe.interventions[intervention]
    vector = recipe.vectors.get(item.vector or "")
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
    total = len(layers) * len(strengths)
    points: list[SweepPoint] = []
    baseline_pass: Any = None
    baseline_value = math.nan
    effect_name = effect
    cost_name = "kl_baseline"
    failures: list[str] = []
    warned: dict[tuple[str, str], str] = {}  # one line per (code, pointer), not per cell
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
            for diagnostic in loaded.warnings:
                text = diagnostic.format()
                own = {f"command line (--set {t})" for t in sets[len(overrides or []) :]}
                if diagnostic.location is not None and diagnostic.location.file in own:
                    # a value the sweep set itself (the grid), not one the user typed
                    text = f"sweep grid: {diagnostic.pointer}: warning: {diagnostic.message}"
                    text += f" [{diagnostic.code}]"
                warned.setdefault((diagnostic.code, diagnostic.pointer), text)
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
            points.append(
                SweepPoint(
                    layer,
                    strength,
                    (chosen.delta if chosen.delta is not None else math.nan),
                    chosen.steered,
                    metrics[cost_name].steered,
                )
            )
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
        list(warned.values()),
    )


def _csv(result: SweepResult) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["layer", "strength", "effect", "steered", "kl", "recommended"])
    for p in result.points:
        writer.writerow(
            [
                p.layer,
                p.strength,
                f"{p.effect:.6f}",
                f"{p.steered:.6f}",
                f"{p.kl:.6f}",
                int(p is result.recommended),
            ]
        )
    return out.getvalue()


def _plot(result: SweepResult) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = sorted({p.layer for p in result.points})
    fig, (ax_effect, ax_kl) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for layer in layers:
        row = sorted((p for p in result.points if p.layer == layer), key=lambda p: p.strength)
        xs = [p.strength for p in row]
        ax_effect.plot(xs, [p.effect for p in row], marker="o", label=f"layer {layer}")
        ax_kl.plot(xs, [p.kl for p in row], marker="o", label=f"layer {layer}")
    ax_kl.axhline(result.kl_budget, color="grey", linestyle="--", label="KL budget")
    best = result.recommended
    if best is not None:
        for ax, y in ((ax_effect, best.effect), (ax_kl, best.kl)):
            ax.scatter(
                [best.strength],
                [y],
                s=180,
                facecolors="none",
                edgecolors="red",
                linewidths=2,
                zorder=5,
                label="recommended",
            )
    ax_effect.set(
        title=f"effect: change of {result.effect_metric}",
        xlabel="strength",
        ylabel="steered - baseline",
    )
    where = "neutral text" if result.cost_metric.endswith(":text") else "prompts"
    ax_kl.set(
        title=f"side effect: KL to baseline ({where})",
        xlabel="strength",
        ylabel="KL, nats",
    )
    for ax in (ax_effect, ax_kl):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"sweep of {result.recipe}")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def write_sweep(result: SweepResult, out_dir: Path) -> dict[str, Path]:
    """sweep.csv, sweep.json and sweep.png in out_dir, written as one set.

    The three files describe one sweep, so they are replaced together: all are rendered in
    memory (the plot takes the longest), then staged and renamed in one `write_files_atomic`.
    An interrupted or failing sweep leaves the previous set untouched (or none), never a new
    CSV next to an old plot; see atomic.py for the one hard-kill window left.
    """
    paths = {name: out_dir / f"sweep.{name}" for name in ("csv", "json", "png")}
    contents = {
        paths["csv"]: _csv(result).encode("utf-8"),
        paths["json"]: (json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n").encode(),
        paths["png"]: _plot(result),
    }
    write_files_atomic(contents)
    return paths
