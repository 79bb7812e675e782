"""The recipe's `eval:` block (format/eval_spec.py), checked torch-free: its methods are vectors
of the recipe, and a strength grid comes with the tuning prompts it is chosen on."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from recipe_engine.diagnostics import Diagnostic
from recipe_engine.format.recipe import Recipe
from recipe_engine.load.includes import LoadedDocument

__all__ = ["check_eval_settings"]


def check_eval_settings(
    recipe: Recipe, doc: LoadedDocument, undefined: Callable[[str, str], Diagnostic]
) -> Iterator[Diagnostic]:
    """`undefined(name, pointer)`: the semantic checker's did-you-mean for a vector name."""
    spec = recipe.eval
    if spec is None:
        return
    for index, name in enumerate(spec.methods):
        if name not in recipe.vectors:
            yield undefined(name, f"/eval/methods/{index}")
    if spec.strengths and spec.tune is None:
        yield doc.diagnostic(
            "eval-strengths-need-tune",
            "eval.strengths are chosen among on tuning prompts: add eval.tune: {file: PATH} "
            "(prompts disjoint from run.prompts)",
            "/eval/strengths",
        )
    if spec.tune is not None and not spec.strengths:
        yield doc.diagnostic(
            "eval-tune-unused",
            "eval.tune is only read to choose among eval.strengths: add the grid, or drop it",
            "/eval/tune",
            severity="warning",
        )
