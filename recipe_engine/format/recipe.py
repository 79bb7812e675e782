"""The root of a recipe document."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from recipe_engine.format.base import RecipeModel
from recipe_engine.format.eval_spec import EvalSpec
from recipe_engine.format.expectations import Expectation
from recipe_engine.format.interventions import Intervention
from recipe_engine.format.model_spec import ModelSpec
from recipe_engine.format.report_spec import ReportSpec
from recipe_engine.format.run_spec import RunSpec
from recipe_engine.format.vectors import VectorSpec
from recipe_engine.version import FORMAT_VERSION

__all__ = ["FORMAT_VERSION", "Recipe"]


class Recipe(RecipeModel):
    """A steering recipe: where vectors come from, where they act, and how the model is run."""

    version: Literal[1] = Field(description="Format version. This engine reads version 1.")
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Short identifier (letters, digits, . _ -), used in reports and file names.",
    )
    description: str | None = Field(default=None, description="What the recipe does and why.")
    model: ModelSpec
    vectors: dict[str, VectorSpec] = Field(
        default_factory=dict,
        description="Named steering vectors; names are identifiers usable in `expr`.",
    )
    interventions: list[Intervention] = Field(
        default_factory=list, description="Edits applied in model execution order."
    )
    run: RunSpec
    report: ReportSpec = Field(default_factory=ReportSpec)
    expect: list[Expectation] = Field(
        default_factory=list,
        description="Claims over this run's own report that `steer test` checks, e.g. "
        "{metric: token_prob:positive, minus: baseline, at_least: 0.4}.",
    )
    eval: EvalSpec | None = Field(
        default=None,
        description="The settings `steer eval` runs this recipe's evaluation table with "
        "(methods, strength grid, tuning prompts, controls); its flags override each.",
    )
