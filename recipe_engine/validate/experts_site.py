"""`site: experts` in a recipe, torch-free: `experts:` comes with the site and only there, the
op is one that is exact there (format/interventions.EXPERTS_OPS), and the backend can reach the
routed experts. The model's side (a MoE at all, each index in range) is model_checks.py's."""

from __future__ import annotations

from collections.abc import Iterator

from recipe_engine.diagnostics import Diagnostic
from recipe_engine.format.interventions import EXPERTS_OPS, Intervention, experts_op_refusal
from recipe_engine.format.recipe import Recipe
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.validate.conditions import all_interventions

__all__ = ["check_experts_site"]


def check_experts_site(recipe: Recipe, doc: LoadedDocument) -> list[Diagnostic]:
    """Every intervention's (the recipe's and its prompt groups')."""
    backend = recipe.run.backend
    return [
        found
        for at, item in all_interventions(recipe)
        for found in _problems(doc, at, item, backend)
    ]


def _problems(
    doc: LoadedDocument, at: str, item: Intervention, backend: str
) -> Iterator[Diagnostic]:
    if item.experts is not None and (item.site != "experts" or item.module is not None):
        where = "a `module:` path" if item.module is not None else f"site {item.site}"
        yield doc.diagnostic(
            "experts-needs-experts-site",
            f"`experts:` only applies with site: experts (this intervention acts at {where})",
            at + "/experts",
        )
    if item.site != "experts" or item.module is not None:
        return
    if item.experts is None:
        yield doc.diagnostic(
            "missing-experts",
            "site: experts needs `experts:`, the routed experts to act on (e.g. [0, 3]); for "
            "the whole MoE block's output use site: mlp_out",
            at + "/site",
        )
    elif len(set(item.experts)) != len(item.experts):
        yield doc.diagnostic(
            "duplicate-expert", "an expert is listed twice in `experts:`", at + "/experts"
        )
    if item.op not in EXPERTS_OPS or (item.op == "scale" and item.vector is not None):
        yield doc.diagnostic("experts-op", experts_op_refusal(item.op), at + "/op")
    if backend == "vllm":
        yield doc.diagnostic(
            "backend-unsupported",
            "site experts on backend vllm: vLLM's fused MoE kernels compute the routed experts "
            "in one call that exposes no routing weights; run this recipe with backend local "
            "or remote",
            at + "/site",
        )
