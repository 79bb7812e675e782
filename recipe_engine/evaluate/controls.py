"""Random-vector controls (`report.controls: {random: N}`, `steer run --controls N`).

A steering claim needs a control distribution, not one random vector: on a real chat model any
perturbation of the steering vector's norm moves a judge's score (greedy output drifts toward
neutral), so "steered vs baseline" alone overstates a direction. Control k (k = 0..N-1)
replaces every vector an intervention uses by a random one of the same size (control_tensors,
the one place controls are drawn, for `steer run` and `steer eval` alike), compiles the same
interventions and runs the same passes (the unsteered baseline and its judged continuations are
reused; concept probes still read the recipe's own vectors); every metric then gets the N
control values, hence the control mean, sd and the steered value's distance from the mean in
control sds (MetricValue.control_z).

Of the same size:
    a vector             a seeded Gaussian of the same norm (row by row for a per-token or
                         per-layer vector): random_like.
    an op lowrank source (LoReFT, h + R^T (W h + b - R h), packed [.., r, 2D + 1]) a random
                         low-rank intervention of the same form: random_lowrank_like.
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
from recipe_engine.vectors.lowrank import pack_lowrank, unpack_lowrank

__all__ = ["add_controls", "control_tensors", "random_like", "random_lowrank_like"]

Progress = Callable[[str, int, int], None]


def _generator(seed: int, name: str) -> torch.Generator:
    """Seeded by (seed, name): two vectors of one control get independent draws, and a control
    is the same on every run."""
    return torch.Generator().manual_seed(zlib.crc32(f"{seed}:{name}".encode()))


def random_like(tensor: torch.Tensor, seed: int, name: str) -> torch.Tensor:
    """A Gaussian of `tensor`'s shape and row norms, seeded by (seed, name)."""
    generator = _generator(seed, name)
    source = tensor.detach().float().cpu()
    noise = torch.randn(source.shape, generator=generator)
    norms = source.norm(dim=-1, keepdim=True)
    scaled: torch.Tensor = noise / noise.norm(dim=-1, keepdim=True) * norms
    return scaled.to(tensor.dtype)


def random_lowrank_like(packed: torch.Tensor, seed: int, name: str) -> torch.Tensor:
    """A random LoReFT intervention of `packed`'s form and size, seeded by (seed, name).

    The edit is R^T ((W - R) h + b): R' is a Haar-random matrix with orthonormal rows (QR of a
    Gaussian, signs fixed by R's diagonal), M' = W' - R' and b' Gaussian directions rescaled
    so that, per layer, ||R'^T M'||_F = ||R^T (W - R)||_F and ||R'^T b'|| = ||R^T b|| (R^T has
    orthonormal columns, so these are ||W - R||_F and ||b||). Why these norms: they are read off
    the tensors (no forward pass, so cheap and the same whatever prompts the table runs), and
    they fix the edit's size as a vector control's norm does: for activations of zero mean and
    covariance sigma^2 I the mean squared edit is sigma^2 ||M||_F^2 + ||b||^2, the same for the
    control as for the method. What it does not match: real activations are neither centred nor
    isotropic, and a trained M aligned with their large directions moves them further than a
    random M' of the same norm does (README, Trained low-rank interventions)."""
    generator = _generator(seed, name)
    rotation, weight, bias = (t.detach().float().cpu() for t in unpack_lowrank(packed))
    *lead, rank, width = rotation.shape
    gaussian = torch.randn(*lead, width, rank, generator=generator)
    q, r = torch.linalg.qr(gaussian)
    signs = torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)  # Haar, not QR's bias
    random_rotation = (q * signs).transpose(-1, -2).contiguous()  # [.., r, D], orthonormal rows
    linear = torch.randn(*lead, rank, width, generator=generator)
    offset = torch.randn(*lead, rank, generator=generator)
    target_linear = (weight - rotation).norm(dim=(-2, -1), keepdim=True)
    target_offset = bias.norm(dim=-1, keepdim=True)
    linear = linear / linear.norm(dim=(-2, -1), keepdim=True) * target_linear
    offset = offset / offset.norm(dim=-1, keepdim=True) * target_offset
    control = pack_lowrank(random_rotation, random_rotation + linear, offset)
    return control.to(packed.dtype)


def control_tensors(
    recipe: Recipe, tensors: dict[str, torch.Tensor], seed: int
) -> dict[str, torch.Tensor]:
    """Control `seed`'s tensors: each vector an intervention uses drawn at random, of its size
    (module docstring), the others as they are. An op lowrank intervention's source is a packed
    low-rank intervention; every other op's is a vector."""
    used = {item.vector for item in recipe.interventions if item.vector}
    lowrank = {item.vector for item in recipe.interventions if item.op == "lowrank"}
    out = {}
    for name, tensor in tensors.items():
        if name in lowrank:
            out[name] = random_lowrank_like(tensor, seed, name)
        elif name in used:
            out[name] = random_like(tensor, seed, name)
        else:
            out[name] = tensor
    return out


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
    originals = {name: v.tensor for name, v in vectors.items()}
    for seed in range(count):
        tensors = control_tensors(recipe, originals, seed)
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
