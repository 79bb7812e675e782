"""Checks of `when:` conditions and prompt groups (torch-free).

Semantics: a condition names a defined, single vector; conditions and prompt groups need a
backend and mode that can gate rows inside a trace. Model shape: a condition's layer exists,
and it reads no later than the first place its intervention acts, in the forward order (layer,
then site), since each row's gate must be known before the first steered layer runs.
"""

from __future__ import annotations

from collections.abc import Iterator

from recipe_engine.diagnostics import Diagnostic, closest
from recipe_engine.format.conditions import ConditionLeaf, condition_leaves
from recipe_engine.format.interventions import Intervention
from recipe_engine.format.layers import LayerRangeError, resolve_layers
from recipe_engine.format.prompt_groups import prompt_parts
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.vectors import ActivationVector, ProbeVector
from recipe_engine.load.includes import LoadedDocument

__all__ = ["SITE_ORDER", "all_interventions", "check_condition_order", "check_conditions"]

# Where each site is reached within one block, in the forward order.
# experts run inside the MoE block: after the attention, before the block's mixed output
SITE_ORDER = {
    "resid_pre": 0,
    "heads": 1,
    "attn_out": 2,
    "experts": 3,
    "mlp_out": 4,
    "resid_post": 5,
}


def all_interventions(recipe: Recipe) -> Iterator[tuple[str, Intervention]]:
    """(pointer, intervention) of the recipe's interventions and of every prompt group's."""
    for index, item in enumerate(recipe.interventions):
        yield f"/interventions/{index}", item
    for part in prompt_parts(recipe.run.prompts):
        if part.group is not None and part.group.interventions is not None:
            for k, item in enumerate(part.group.interventions):
                yield f"/run/prompts/{part.index}/interventions/{k}", item


def has_groups(recipe: Recipe) -> bool:
    return any(part.group is not None for part in prompt_parts(recipe.run.prompts))


def check_conditions(recipe: Recipe, doc: LoadedDocument) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    backend, mode = recipe.run.backend, recipe.run.mode
    for at, item in all_interventions(recipe):
        if item.when is None:
            continue
        if item.module is not None:
            found.append(
                doc.diagnostic(
                    "condition-module",
                    "`when:` needs `layers:` and `site:` (its read is ordered against them); "
                    "remove `module:`",
                    at + "/module",
                )
            )
        if mode == "edit" or backend == "vllm":
            what = "run.mode edit" if mode == "edit" else "backend vllm"
            found.append(
                doc.diagnostic(
                    "condition-unsupported",
                    f"`when:` is not supported with {what}: each row's gate is decided inside "
                    "a trace (use run.mode generate, backend local or remote)",
                    at + "/when",
                )
            )
        for leaf, pointer in condition_leaves(item.when, at + "/when"):
            spec = recipe.vectors.get(leaf.vector)
            if spec is None:
                known = ", ".join(sorted(recipe.vectors)) or "none defined"
                match = closest(leaf.vector, recipe.vectors)
                hint = f"; did you mean {match!r}?" if match else ""
                found.append(
                    doc.diagnostic(
                        "undefined-vector",
                        f"no vector named {leaf.vector!r} under `vectors:` ({known}){hint}",
                        pointer + "/vector",
                    )
                )
                continue
            elif leaf.score == "probability" and not isinstance(spec, ProbeVector):
                found.append(
                    doc.diagnostic(
                        "condition-probability",
                        f"score: probability reads a probe's own P(label 1); {leaf.vector!r} is "
                        f"kind {spec.kind!r}: use a vector of kind probe, or score: cosine",
                        pointer + "/score",
                    )
                )
            elif isinstance(spec, ActivationVector) and spec.position == "all":
                found.append(
                    doc.diagnostic(
                        "vector-shape",
                        f"vector {leaf.vector!r} holds one vector per position; a condition "
                        "needs one direction (position: last or mean)",
                        pointer + "/vector",
                    )
                )
            found += _threshold(leaf, pointer, doc)
            found += _site_space(leaf, spec, pointer, doc)
    if has_groups(recipe) and (mode == "edit" or backend == "vllm"):
        what = "run.mode edit" if mode == "edit" else "backend vllm"
        found.append(
            doc.diagnostic(
                "groups-unsupported",
                f"prompt groups are not supported with {what}: rows with different plans share "
                "one trace (use run.mode generate or trace, backend local or remote)",
                "/run/prompts",
            )
        )
    return found


# The values each bounded score can take: cos(a, v) and a probe's sigmoid. A projection is a
# signed length, unbounded, so any threshold can be crossed.
_SCORE_RANGE = {"cosine": (-1.0, 1.0), "probability": (0.0, 1.0)}


def _threshold(leaf: ConditionLeaf, pointer: str, doc: LoadedDocument) -> list[Diagnostic]:
    """A threshold the score cannot cross: `above` at or past the top of its range never fires
    (score > threshold is impossible), `below` at or past the bottom neither (an error: the
    intervention would never act, silently); past the other end it always fires (a warning:
    the condition does nothing)."""
    if leaf.score not in _SCORE_RANGE:
        return []
    low, high = _SCORE_RANGE[leaf.score]
    t, above = leaf.threshold, leaf.compare == "above"
    span = f"{leaf.score} lies in [{low:g}, {high:g}]"
    if (above and t >= high) or (not above and t <= low):
        sign = ">" if above else "<"
        fix = f"below {high:g}" if above else f"above {low:g}"
        return [
            doc.diagnostic(
                "condition-never-fires",
                f"compare: {leaf.compare} with threshold {t:g} never fires: {span}, so "
                f"{leaf.score} {sign} {t:g} is impossible and the intervention never acts; use a "
                f"threshold {fix} (`steer condition` finds one)",
                pointer + "/threshold",
            )
        ]
    if (above and t < low) or (not above and t > high):
        return [
            doc.diagnostic(
                "condition-always-fires",
                f"compare: {leaf.compare} with threshold {t:g} always fires: {span}, so the "
                "condition gates nothing; drop `when:` or pick a threshold inside that range",
                pointer + "/threshold",
                severity="warning",
            )
        ]
    return []


def _site_space(
    leaf: ConditionLeaf, spec: object, pointer: str, doc: LoadedDocument
) -> list[Diagnostic]:
    """`site: heads` reads the concatenated per-head outputs (n_heads x head_dim, before the
    attention's output projection); every other site is in the residual stream's basis. A
    direction built in one space scores nothing meaningful in the other, even where both widths
    happen to be equal."""
    built = getattr(spec, "site", None)
    if built is None or getattr(spec, "module", None) is not None:
        return []  # no site recorded (file, random, expr) or a custom module: width is checked
    if (built == "heads") == (leaf.site == "heads"):
        return []
    return [
        doc.diagnostic(
            "condition-site",
            f"the condition reads site {leaf.site}, but vector {leaf.vector!r} is built at "
            f"{built}: "
            + (
                "heads holds the per-head outputs before the attention's output projection, "
                "not the residual stream"
            )
            + f"; read the condition at site {built}, or build the vector at {leaf.site}",
            pointer + "/site",
        )
    ]


def _first_target(item: Intervention, n_layers: int) -> tuple[int, int] | None:
    """(layer, site order) of the first place an intervention acts, None if unresolvable."""
    if item.layers is None or item.module is not None:
        return None
    try:
        layers = [layer for layer, _ in resolve_layers(item.layers, n_layers)]
    except (LayerRangeError, ValueError):
        return None  # reported by the layer checks
    return (min(layers), SITE_ORDER[item.site]) if layers else None


def check_condition_order(recipe: Recipe, doc: LoadedDocument, n_layers: int) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    for at, item in all_interventions(recipe):
        if item.when is None:
            continue
        first = _first_target(item, n_layers)
        for leaf, pointer in condition_leaves(item.when, at + "/when"):
            if not -n_layers <= leaf.layer < n_layers:
                message = str(LayerRangeError(leaf.layer, n_layers))
                found.append(doc.diagnostic("layer-range", message, pointer + "/layer"))
                continue
            read = (leaf.layer % n_layers, SITE_ORDER[leaf.site])
            if first is not None and read > first:
                found.append(
                    doc.diagnostic(
                        "condition-after-target",
                        f"the condition reads layer {read[0]} {leaf.site}, after the "
                        f"intervention first acts (layer {first[0]}): a row's gate must be "
                        "known before its first steered layer; read the condition at or before "
                        "that layer (the engine runs no second pass)",
                        pointer + "/layer",
                    )
                )
    return found
