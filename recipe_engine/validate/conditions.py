"""Checks of `when:` conditions and prompt groups (torch-free).

Semantics: a condition names a defined, single vector; conditions and prompt groups need a
backend and mode that can gate rows inside a trace. Model shape: a condition's layer exists,
and it reads no later than the first place its intervention acts, in the forward order (layer,
then site), since each row's gate must be known before the first steered layer runs.
"""

from __future__ import annotations

from collections.abc import Iterator

from recipe_engine.diagnostics import Diagnostic
from recipe_engine.format.conditions import condition_leaves
from recipe_engine.format.interventions import Intervention
from recipe_engine.format.layers import LayerRangeError, resolve_layers
from recipe_engine.format.prompt_groups import prompt_parts
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.vectors import ActivationVector, ProbeVector
from recipe_engine.load.includes import LoadedDocument

__all__ = ["SITE_ORDER", "all_interventions", "check_condition_order", "check_conditions"]

# Where each site is reached within one block, in the forward order.
SITE_ORDER = {"resid_pre": 0, "heads": 1, "attn_out": 2, "mlp_out": 3, "resid_post": 4}


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
                found.append(
                    doc.diagnostic(
                        "undefined-vector",
                        f"no vector named {leaf.vector!r} under `vectors:` ({known})",
                        pointer + "/vector",
                    )
                )
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
