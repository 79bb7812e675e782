"""`when:` on an intervention: steer only the prompts whose hidden state matches a condition.

Conditional activation steering (CAST): a condition reads the activation at one layer and site
while the prompt is processed (step 0), reduces it over the prompt's tokens (`aggregate`),
scores it against a direction (`score`) and compares the score with a threshold. A row that
passes is steered on every step of its generation; a row that fails is left untouched, so its
outputs are bit-identical to the unsteered run. Conditions combine with `all`, `any` and `not`.

    score        cosine       cos(a, v) in [-1, 1]               (a: the aggregated activation)
                 projection   a . v / |v|  (signed length along the direction)
                 probability  sigmoid(w . a + b): a probe vector's own P(label 1)
    compare      above        fires when score > threshold
                 below        fires when score < threshold

The condition reads the model at its layer and site before any intervention at that same place
acts, and must come no later than the layers it gates in the forward order (each row's gate
has to be known before the first steered layer runs; there is no second pass). `steer
condition RECIPE --data labelled.jsonl` searches layers x thresholds x comparators.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from recipe_engine.format.base import RecipeModel
from recipe_engine.format.sites import SITE_FIELD, VECTOR_NAME_PATTERN, Site

__all__ = [
    "AllConditions",
    "AnyCondition",
    "Condition",
    "ConditionLeaf",
    "NotCondition",
    "condition_leaves",
]


class ConditionLeaf(RecipeModel):
    vector: Annotated[str, Field(pattern=VECTOR_NAME_PATTERN)] = Field(
        description="The condition direction: a vector under `vectors:` (one vector, not one "
        "per position)."
    )
    layer: int = Field(description="Layer the condition reads (negative counts from the end).")
    site: Site = SITE_FIELD
    aggregate: Literal["mean", "last"] = Field(
        default="mean",
        description="How the prompt's tokens are reduced before scoring: mean (over the "
        "prompt's real tokens, as CAST does; the tokenizer's own leading marker is left out) "
        "or last (the prompt's last token).",
    )
    score: Literal["cosine", "projection", "probability"] = Field(
        default="cosine",
        description="cosine: cosine similarity with the vector. projection: the signed length "
        "of the aggregated activation along the vector's direction. probability: a probe "
        "vector's (kind: probe) own P(label 1) = sigmoid(w . a + b).",
    )
    compare: Literal["above", "below"] = Field(
        default="above", description="above: fires when score > threshold; below: score < it."
    )
    threshold: float = Field(description="The score the comparison is made against.")


class AllConditions(RecipeModel):
    all: list[Condition] = Field(min_length=1, description="Fires when every condition fires.")


class AnyCondition(RecipeModel):
    any: list[Condition] = Field(min_length=1, description="Fires when one condition fires.")


class NotCondition(RecipeModel):
    not_: Condition = Field(alias="not", description="Fires when the condition does not.")


def _condition_form(value: Any) -> str | None:
    if isinstance(value, RecipeModel):
        return type(value).__name__
    if not isinstance(value, dict):
        return None
    for key, form in (("all", "AllConditions"), ("any", "AnyCondition"), ("not", "NotCondition")):
        if key in value:
            return form
    return "ConditionLeaf"


Condition = Annotated[
    Annotated[ConditionLeaf, Tag("ConditionLeaf")]
    | Annotated[AllConditions, Tag("AllConditions")]
    | Annotated[AnyCondition, Tag("AnyCondition")]
    | Annotated[NotCondition, Tag("NotCondition")],
    Discriminator(
        _condition_form,
        custom_error_type="condition_type",
        custom_error_message="a condition is a mapping: {vector, layer, threshold, ...}, "
        "{all: [...]}, {any: [...]} or {not: ...}",
    ),
]

AllConditions.model_rebuild()
AnyCondition.model_rebuild()
NotCondition.model_rebuild()


def condition_leaves(condition: Condition, pointer: str) -> list[tuple[ConditionLeaf, str]]:
    """Every leaf of a condition tree with its JSON pointer, in the order written."""
    if isinstance(condition, ConditionLeaf):
        return [(condition, pointer)]
    if isinstance(condition, NotCondition):
        return condition_leaves(condition.not_, pointer + "/not")
    children = condition.all if isinstance(condition, AllConditions) else condition.any
    key = "all" if isinstance(condition, AllConditions) else "any"
    found: list[tuple[ConditionLeaf, str]] = []
    for k, child in enumerate(children):
        found.extend(condition_leaves(child, f"{pointer}/{key}/{k}"))
    return found
