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
                         low-rank intervention of the same form whose edit has the method's
                         mean norm on the run's unsteered activations at its site:
                         random_lowrank_like.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import torch

from recipe_engine.compiler import compile_plan, per_layer_rows
from recipe_engine.evaluate.sides import evaluate_passes, measure_run
from recipe_engine.execute.passes import RunPasses
from recipe_engine.format.layers import resolve_layers
from recipe_engine.format.recipe import Recipe
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.report.results import RunReport
from recipe_engine.resolve.loaded_model import LoadedModel
from recipe_engine.vectors.build import BuiltVector
from recipe_engine.vectors.extraction import read_activations
from recipe_engine.vectors.lowrank import pack_lowrank, unpack_lowrank

__all__ = [
    "add_controls",
    "control_tensors",
    "lowrank_inputs",
    "random_like",
    "random_lowrank_like",
]

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


def random_lowrank_like(
    packed: torch.Tensor, seed: int, name: str, inputs: Sequence[torch.Tensor]
) -> torch.Tensor:
    """A random LoReFT intervention of `packed`'s form, seeded by (seed, name), whose edit has
    the method's mean size on `inputs` (one [tokens, D] activation tensor per row block of
    `packed`: per layer for a per-layer intervention, one for a shared one).

    The edit is R^T ((W - R) h + b). R' is a Haar-random matrix with orthonormal rows (QR of a
    Gaussian, column signs fixed by the triangular factor's diagonal); M' = W' - R' and b' are
    Gaussian directions, first given the method's ||W - R||_F and ||b|| (so the linear part and
    the offset keep the method's proportions), then both multiplied by one factor per row
    block, so that the mean over the tokens of `inputs` of ||R'^T (M' h + b')|| equals the
    method's mean ||R^T ((W - R) h + b)||; the edit is linear in (M', b'), so the factor makes
    the match exact. Why not the parameter norms alone: activations are neither centred nor
    isotropic, and a trained M points at their large directions, so a random M' of the same
    Frobenius norm edits them far less (2.4-3.4x less on recipes/trained-lowrank.yaml's test
    prompts, scripts/lowrank_control_sizes.py): its controls would say what a much smaller edit
    does. A vector control moves every activation by exactly the vector's norm; this one moves
    them by the method's on average."""
    generator = _generator(seed, name)
    rotation, weight, bias = (t.detach().float().cpu() for t in unpack_lowrank(packed))
    *lead, rank, width = rotation.shape
    gaussian = torch.randn(*lead, width, rank, generator=generator)
    q, r = torch.linalg.qr(gaussian)
    signs = torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)  # Haar, not QR's bias
    random_rotation = (q * signs).transpose(-1, -2).contiguous()  # [.., r, D], orthonormal rows
    linear = torch.randn(*lead, rank, width, generator=generator)
    offset = torch.randn(*lead, rank, generator=generator)
    linear = (
        linear
        / linear.norm(dim=(-2, -1), keepdim=True)
        * (weight - rotation).norm(dim=(-2, -1), keepdim=True)
    )
    offset = offset / offset.norm(dim=-1, keepdim=True) * bias.norm(dim=-1, keepdim=True)
    blocks = [()] if not lead else [(k,) for k in range(lead[0])]
    if len(inputs) != len(blocks):
        raise ValueError(f"{len(inputs)} activation sets for {len(blocks)} low-rank blocks")
    for block, h in zip(blocks, inputs, strict=True):
        h = h.detach().float().cpu()
        method = _mean_edit_norm(h, weight[block] - rotation[block], bias[block])
        control = _mean_edit_norm(h, linear[block], offset[block])
        factor = method / control if control > 0 else 0.0
        linear[block] *= factor
        offset[block] *= factor
    packed_control = pack_lowrank(random_rotation, random_rotation + linear, offset)
    return packed_control.to(packed.dtype)


def _mean_edit_norm(h: torch.Tensor, linear: torch.Tensor, offset: torch.Tensor) -> float:
    """Mean over the rows of h [N, D] of ||R^T (M h + b)||, which is ||M h + b||: R^T has
    orthonormal columns (R is not needed)."""
    if not len(h):
        return 0.0
    return float((h @ linear.T + offset).norm(dim=-1).mean())


def lowrank_inputs(
    recipe: Recipe, model: LoadedModel, prompts: Sequence[str]
) -> dict[str, list[torch.Tensor]]:
    """For each op lowrank intervention's source: the unsteered activations [tokens, D] at its
    site on `prompts` (every prompt token), one tensor per row block of its packed tensor: per
    trained layer for one trained per layer (the compiler's per_layer_rows), all the
    intervention's layers together for a shared one."""
    unique = list(dict.fromkeys(prompts))
    n_layers = model.shape.n_layers
    rows = per_layer_rows(recipe, n_layers)
    out: dict[str, list[torch.Tensor]] = {}
    for item in recipe.interventions:
        name = item.vector
        if item.op != "lowrank" or name is None or name in out:
            continue
        if name in rows:
            out[name] = [
                _tokens(model, unique, item.site, layer, item.module) for layer in rows[name]
            ]
            continue
        fixed = item.module is not None and "{layer}" not in item.module
        layers = [0] if fixed else [layer for layer, _ in resolve_layers(item.layers, n_layers)]
        out[name] = [torch.cat([_tokens(model, unique, item.site, k, item.module) for k in layers])]
    return out


def _tokens(
    model: LoadedModel, prompts: Sequence[str], site: str, layer: int, module: str | None
) -> torch.Tensor:
    """Every prompt token's activation at the site, [tokens, D]: one prompt per trace, so no
    padding row enters."""
    rows = [
        read_activations(
            model, [prompt], layer=layer, site=site, module=module, position="all", batch_size=1
        )[0]
        for prompt in prompts
    ]
    return torch.cat(rows)


def control_tensors(
    recipe: Recipe,
    tensors: dict[str, torch.Tensor],
    seed: int,
    lowrank: dict[str, list[torch.Tensor]] | None = None,
) -> dict[str, torch.Tensor]:
    """Control `seed`'s tensors: each vector an intervention uses drawn at random, of its size
    (module docstring), the others as they are. An op lowrank intervention's source is a packed
    low-rank intervention, sized on its `lowrank` activations (lowrank_inputs); every other
    op's is a vector."""
    used = {item.vector for item in recipe.interventions if item.vector}
    packed = {item.vector for item in recipe.interventions if item.op == "lowrank"}
    out = {}
    for name, tensor in tensors.items():
        if name in packed:
            if lowrank is None or name not in lowrank:
                raise ValueError(f"the control of low-rank {name!r} needs its activations")
            out[name] = random_lowrank_like(tensor, seed, name, lowrank[name])
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
    inputs = lowrank_inputs(recipe, model, passes.prompts)
    for seed in range(count):
        tensors = control_tensors(recipe, originals, seed, inputs)
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
