"""`steer eval`'s driver: the evaluation table (evaluate/table.py) with its runs, each the recipe
loaded with overrides and run by pipeline.py (which comes after the evaluate stage, so the
table is handed these two functions rather than importing them)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from recipe_engine.evaluate.table import EvalTable, evaluate_table
from recipe_engine.execute.runner import PassResult
from recipe_engine.format.recipe import Recipe
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.pipeline import LoadedRecipe, Progress, load_recipe, run_recipe
from recipe_engine.report.results import RunReport

__all__ = ["evaluate_recipe"]


def evaluate_recipe(
    path: str | Path,
    *,
    methods: Sequence[str] | None = None,
    strengths: Sequence[float] | None = None,
    tune: str | None = None,
    fluency_budget: float | None = None,
    controls: int | None = None,
    prompting: Sequence[str] | None = None,
    instruction: str | None = None,
    overrides: Sequence[str] = (),
    allow_outside_root: bool = False,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
) -> EvalTable:
    """The evaluation table of a recipe (evaluate/table.py documents the rule and the
    aggregate): `methods` (vector names) at strengths chosen among `strengths` on the `tune`
    prompt file, next to the baseline, prompting (`prompting` modes, default: system and
    prefix for chat prompts, prefix for plain text; the recipe's report.prompt_baseline or
    `instruction`) and `controls` random controls per method. A
    setting left None comes from the recipe's `eval:` block, else its default."""

    # The table's runs change strength, prompting and controls, which the recipe's `expect:`
    # claims may rely on; the claims are `steer test`'s to check, so its runs drop them.
    def loaded(sets: Sequence[str]) -> LoadedRecipe:
        return load_recipe(
            path, overrides=[*sets, "expect=[]"], allow_outside_root=allow_outside_root
        )

    def load(sets: Sequence[str]) -> tuple[Recipe, LoadedDocument]:
        recipe = loaded(sets)
        return recipe.recipe, recipe.document

    def run(sets: Sequence[str], baseline: PassResult | None) -> RunReport:
        return run_recipe(loaded(sets), progress=progress, baseline=baseline)

    return evaluate_table(
        run,
        load,
        methods=methods,
        strengths=strengths,
        tune=tune,
        fluency_budget=fluency_budget,
        controls=controls,
        prompting=prompting,
        instruction=instruction,
        overrides=overrides,
        log=log,
    )
