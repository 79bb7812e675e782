"""`eval:`: the settings `steer eval` runs a recipe's evaluation table with, so the table is
reproduced by `steer eval RECIPE` alone (flags still override each). The methods it names count
as used vectors: a recipe that compares a trained vector with the one it steers with defines
both."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from recipe_engine.format.base import RecipeModel
from recipe_engine.format.prompts import PromptFile

__all__ = ["EvalSpec"]


class EvalSpec(RecipeModel):
    """What `steer eval` compares and how the strength is chosen (README, Evaluating)."""

    methods: list[str] = Field(
        default_factory=list,
        description="Vectors of this recipe compared side by side, each in place of the first "
        "intervention's vector (default: that vector alone).",
    )
    strengths: list[float] | None = Field(
        default=None,
        min_length=1,
        description="The strength grid each method is tuned over on `tune` (needs `tune`); "
        "without it, the first intervention's strength is used, untuned.",
    )
    tune: PromptFile | None = Field(
        default=None,
        description="Tuning prompts the strength is chosen on, e.g. {file: data/tune.txt}; "
        "refused when they share a prompt with run.prompts (the test prompts).",
    )
    controls: int | None = Field(
        default=None, ge=0, description="Random controls per method (default 8; 0: none)."
    )
    fluency_budget: float | None = Field(
        default=None,
        gt=0,
        description="A strength is eligible when its perplexity is at most this times the "
        "unsteered model's (default 1.5).",
    )
    prompting: list[Literal["system", "prefix"]] | None = Field(
        default=None,
        description="How the table gives report.prompt_baseline's instruction, one row per "
        "mode: system (a system message; chat prompts only) and/or prefix (before the prompt); "
        "[] for no prompting rows. Default: [system, prefix] when every run prompt is a chat "
        "conversation, else [prefix].",
    )
