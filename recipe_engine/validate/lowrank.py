"""Trained low-rank interventions (`kind: trained, form: lowrank`, applied by `op: lowrank`):
each field that only one side may carry, at its line; the rank against the site's width."""

from __future__ import annotations

from collections.abc import Iterator

from recipe_engine import expr as expr_lang
from recipe_engine.diagnostics import Diagnostic
from recipe_engine.format.conditions import condition_leaves
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.trained import TrainedVector, is_lowrank
from recipe_engine.format.vectors import ExprVector
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.load.source_map import join_pointer
from recipe_engine.model_config import ModelShape
from recipe_engine.validate.conditions import all_interventions

__all__ = ["check_lowrank", "check_lowrank_rank"]

_APPLY = "a low-rank intervention is applied with op: lowrank"


def check_lowrank(recipe: Recipe, doc: LoadedDocument) -> list[Diagnostic]:
    return [*_specs(recipe, doc), *_uses(recipe, doc)]


def _specs(recipe: Recipe, doc: LoadedDocument) -> Iterator[Diagnostic]:
    for name, spec in recipe.vectors.items():
        if not isinstance(spec, TrainedVector):
            continue
        at = join_pointer("/vectors", name)
        if spec.form == "vector" and spec.rank is not None:
            yield doc.diagnostic(
                "lowrank-field",
                "rank is the rank of a low-rank intervention: add `form: lowrank` (applied by "
                "op: lowrank), or remove rank",
                at + "/rank",
            )
        if spec.form != "lowrank":
            continue
        if spec.max_norm is not None:
            yield doc.diagnostic(
                "lowrank-field",
                "max_norm bounds a vector's norm; a low-rank intervention has R, W and b, not "
                "one vector: remove it (use weight_decay to keep W and b small)",
                at + "/max_norm",
            )
        if spec.normalize != "none":
            yield doc.diagnostic(
                "lowrank-field",
                "normalize: unit rescales a vector; a low-rank intervention is no vector "
                "(its strength scales the edit): remove it",
                at + "/normalize",
            )


def _uses(recipe: Recipe, doc: LoadedDocument) -> Iterator[Diagnostic]:
    vectors = recipe.vectors
    for at, item in all_interventions(recipe):
        source = vectors.get(item.vector) if item.vector is not None else None
        if item.op == "lowrank" and source is not None and not is_lowrank(source):
            form = " form: vector" if isinstance(source, TrainedVector) else ""
            yield doc.diagnostic(
                "lowrank-source",
                f"op lowrank needs a `kind: trained, form: lowrank` vector; {item.vector!r} is "
                f"kind {source.kind!r}{form} (apply a vector with op: add)",
                at + "/vector",
            )
        if item.op != "lowrank" and is_lowrank(source):
            yield doc.diagnostic(
                "lowrank-source",
                f"vector {item.vector!r} is a low-rank intervention (form: lowrank), not a "
                f"vector: {_APPLY}",
                at + "/op",
            )
        if item.op == "lowrank" and item.normalize:
            yield doc.diagnostic(
                "lowrank-field",
                "normalize rescales a vector; op lowrank has none (strength scales its edit)",
                at + "/normalize",
            )
        if item.op == "lowrank" and item.heads is not None:
            yield doc.diagnostic(
                "lowrank-field",
                "op lowrank acts on all heads together, as it was trained: remove `heads:`",
                at + "/heads",
            )
        for leaf, where in (
            condition_leaves(item.when, at + "/when") if item.when is not None else []
        ):
            if is_lowrank(vectors.get(leaf.vector)):
                yield doc.diagnostic(
                    "lowrank-source",
                    f"a condition reads a direction; {leaf.vector!r} is a low-rank intervention",
                    where + "/vector",
                )
    for name, spec in vectors.items():
        if isinstance(spec, ExprVector):
            try:
                refs = [ref for ref, _ in expr_lang.names_in(expr_lang.parse(spec.expr))]
            except expr_lang.ExprError:
                refs = []  # semantic.py reports the syntax
            for other in dict.fromkeys([*refs, *spec.orthogonalize_against]):
                if is_lowrank(vectors.get(other)):
                    yield _in_expr(doc, name, other)


def _in_expr(doc: LoadedDocument, name: str, other: str) -> Diagnostic:
    return doc.diagnostic(
        "lowrank-source",
        f"{other!r} is a low-rank intervention, not a vector: vector algebra cannot use it",
        join_pointer("/vectors", name),
    )


def check_lowrank_rank(recipe: Recipe, doc: LoadedDocument, shape: ModelShape) -> list[Diagnostic]:
    """rank <= the width of the site it is trained at (R [rank, width] has orthonormal rows)."""
    found = []
    for name, spec in recipe.vectors.items():
        if is_lowrank(spec) and isinstance(spec, TrainedVector) and spec.rank is not None:
            width = shape.heads_width if spec.site == "heads" else shape.hidden_size
            if spec.rank > width:
                found.append(
                    doc.diagnostic(
                        "lowrank-rank",
                        f"rank {spec.rank} exceeds the width {width} of site {spec.site}: "
                        f"R [rank, width] cannot have orthonormal rows; use at most {width}",
                        join_pointer("/vectors", name) + "/rank",
                    )
                )
    return found
