"""Random-vector controls (`report.controls: {random: N}`, `steer run --controls N`).

A steering claim needs a control distribution, not one random vector: on a real chat model any
perturbation of the steering vector's norm moves a judge's score (greedy output drifts toward
neutral), so "steered vs baseline" alone overstates a direction. Control k (k = 0..N-1)
replaces every vector an intervention uses by a seeded Gaussian of the same norm (row by row
for a per-token vector), compiles the same interventions and runs the same passes (the
unsteered baseline and its judged continuations are reused; concept probes still read the
recipe's own vectors); every metric then gets the N control values, hence the control mean,
sd and the steered value's distance from the mean in control sds (MetricValue.control_z).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import torch

from recipe_engine.compiler import compile_plan
from recipe_engine.evaluate.sides import evaluate_passes, measure_run
from recipe_engine.execute.passes import RunPasses
from recipe_engine.format.recipe import Recipe
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.report.results import RunReport
from recipe_engine.resolve.loaded_model import LoadedModel
from recipe_engine.vectors.build import BuiltVector

__all__ = ["add_controls", "random_like"]

Progress = Callable[[str, int, int], None]


def random_like(tensor: torch.Tensor, seed: int, name: str) -> torch.Tensor:
    """A Gaussian of `tensor`'s shape and row norms, seeded by (seed, name): two vectors of one
    control get independent directions, and a control is the same on every run."""
    generator = torch.Generator().manual_seed(zlib.crc32(f"{seed}:{name}".encode()))
    source = tensor.detach().float().cpu()
    noise = torch.randn(source.shape, generator=generator)
    norms = source.norm(dim=-1, keepdim=True)
    scaled: torch.Tensor = noise / noise.norm(dim=-1, keepdim=True) * norms
    return scaled.to(tensor.dtype)


def add_controls(
    report: RunReport,
    recipe: Recipe,
    doc: LoadedDocument,
    model: LoadedModel,
    vectors: dict[str, BuiltVector],
    passes: RunPasses,
    count: int,
    progress: Progress | None = None,
) -> None:
    """Run `count` random controls and append each metric's control value to `report`."""
    plain = recipe.report.model_copy(update={"prompt_baseline": None, "controls": None})
    control_recipe = recipe.model_copy(update={"report": plain})
    used = {item.vector for item in recipe.interventions if item.vector}
    originals = {name: v.tensor for name, v in vectors.items()}
    for seed in range(count):
        tensors = {
            name: random_like(t, seed, name) if name in used else t for name, t in originals.items()
        }
        plan = compile_plan(control_recipe, model, tensors, doc)
        tick = _labelled(progress, f"control {seed + 1}/{count}")
        control = evaluate_passes(
            control_recipe,
            model,
            plan,
            doc,
            tick,
            passes.sides.get("baseline"),
            vectors=originals,
            judged_baseline=passes.judged.get("baseline"),
        )
        measured = measure_run(control_recipe, doc, model, vectors, plan, control, {})
        values = {m.name: m.steered for m in measured.metrics}
        for metric in report.metrics:
            if metric.name in values:
                metric.controls.append(values[metric.name])


def _labelled(progress: Progress | None, label: str) -> Progress | None:
    if progress is None:
        return None
    return lambda stage, done, total: progress(f"{label} {stage}", done, total)
