"""`expect:` claims over a run's own report, checked by `steer test` (evaluate/expectations.py).

Three forms, told apart by their first key:

    {metric: NAME, ...}        a number the report computes, with bounds
    {conditions: {...}}        which prompts a conditional intervention (`when:`) fires on
    {untouched: true}          rows no intervention acted on are bit-identical to the baseline

A metric claim picks one quantity and bounds it (`at_least` <= quantity <= `at_most`):

    of: SIDE                   the metric on that side (default: steered); SIDE is baseline,
                               steered, prompting or control_mean
    of: control_z              (steered - control mean) / control sd  (report.controls)
    minus: SIDE                the `of` side minus SIDE  (minus: baseline is the report's delta)
    ratio_to: SIDE             the `of` side divided by SIDE
    per_prompt: {...}          per prompt: the `of` side (minus `minus`, if given) within the
                               bounds on at least `fraction` of the prompts
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from recipe_engine.format.base import RecipeModel
from recipe_engine.format.prompts import PromptSource

__all__ = [
    "SIDES",
    "ConditionsClaim",
    "ConditionsExpectation",
    "Expectation",
    "MetricExpectation",
    "PerPrompt",
    "UntouchedExpectation",
]

Side = Literal["baseline", "steered", "prompting", "control_mean"]
SIDES: tuple[str, ...] = ("baseline", "steered", "prompting", "control_mean")


class PerPrompt(RecipeModel):
    """The claim holds prompt by prompt, on at least `fraction` of them."""

    at_least: float | None = Field(default=None, description="Each prompt's value >= this.")
    at_most: float | None = Field(default=None, description="Each prompt's value <= this.")
    fraction: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="The share of prompts (continuations, with run.samples) that must hold.",
    )


class MetricExpectation(RecipeModel):
    """A bound on one number of the report: a side of a metric, a difference, a ratio, the
    control z-score, or per-prompt values."""

    metric: str = Field(
        min_length=1,
        description="A metric the report computes: token_prob:SET, logit_diff, kl_baseline, "
        "kl_baseline:text, perplexity, concept:NAME, concept:NAME:above, fluency, "
        "repetition:distinct-N, repetition:longest, instruction, instruction:judge.",
    )
    of: Literal["baseline", "steered", "prompting", "control_mean", "control_z"] = Field(
        default="steered",
        description="The side measured (control_mean: the random controls' mean), or "
        "control_z: (steered - control mean) / control sd.",
    )
    minus: Side | None = Field(default=None, description="Subtract this side from `of`.")
    ratio_to: Side | None = Field(default=None, description="Divide `of` by this side.")
    at_least: float | None = Field(default=None, description="The quantity must be >= this.")
    at_most: float | None = Field(default=None, description="The quantity must be <= this.")
    per_prompt: PerPrompt | None = Field(
        default=None,
        description="Bound each prompt's value instead of the mean (bounds go inside), on at "
        "least `fraction` of the prompts: {at_least: 0.1, fraction: 0.9}.",
    )


class ConditionsClaim(RecipeModel):
    intervention: int = Field(ge=0, description="Index of the intervention under `interventions:`.")
    fires_on: PromptSource | None = Field(
        default=None, description="Prompts of the run on which the condition must fire."
    )
    silent_on: PromptSource | None = Field(
        default=None, description="Prompts of the run on which it must not fire."
    )


class ConditionsExpectation(RecipeModel):
    """Which run prompts a conditional intervention fires on (each listed prompt must be one the
    run has)."""

    conditions: ConditionsClaim


class UntouchedExpectation(RecipeModel):
    """Every prompt on which no intervention acted (each one is conditional and none fired) has
    next-token logits and generated tokens bit-identical to the baseline's, in the same run."""

    untouched: Literal[True]


def _form(value: Any) -> str | None:
    if isinstance(value, RecipeModel):
        return type(value).__name__
    if not isinstance(value, dict):
        return None
    for key, form in (
        ("conditions", "ConditionsExpectation"),
        ("untouched", "UntouchedExpectation"),
    ):
        if key in value:
            return form
    return "MetricExpectation"


Expectation = Annotated[
    Annotated[MetricExpectation, Tag("MetricExpectation")]
    | Annotated[ConditionsExpectation, Tag("ConditionsExpectation")]
    | Annotated[UntouchedExpectation, Tag("UntouchedExpectation")],
    Discriminator(
        _form,
        custom_error_type="expectation_type",
        custom_error_message="an expectation is a mapping: {metric: NAME, at_least: ...}, "
        "{conditions: {intervention: N, fires_on: ...}} or {untouched: true}",
    ),
]
