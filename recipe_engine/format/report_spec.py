"""`report:` what the run prints and measures."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from recipe_engine.format.base import RecipeModel
from recipe_engine.format.prompts import PromptSource

__all__ = ["Metric", "ReportSpec"]

TokenList = Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]


class TokenProbMetric(RecipeModel):
    """Probability mass of sets of tokens (each word's first token, with and without a
    leading space)."""

    kind: Literal["token_prob"]
    tokens: dict[str, TokenList] = Field(
        min_length=1, description="Named token sets, e.g. {positive: [great], negative: [bad]}."
    )
    at: Literal["next", "generated"] = Field(
        default="next",
        description="next: the next-token distribution after the prompt; generated: averaged "
        "over the generated positions.",
    )


class LogitDiffMetric(RecipeModel):
    """Mean logit of `positive` tokens minus mean logit of `negative` tokens."""

    kind: Literal["logit_diff"]
    positive: TokenList
    negative: TokenList


class KLBaselineMetric(RecipeModel):
    """KL(steered || baseline) of next-token distributions: the side-effect cost. Without
    `text`: after each run prompt. With `text`: at every position of those (neutral) texts."""

    kind: Literal["kl_baseline"]
    text: PromptSource | None = Field(
        default=None,
        description="Neutral texts: average the KL over all their positions instead of the "
        "run prompts' next token.",
    )


class PerplexityMetric(RecipeModel):
    """Perplexity of neutral text under the steered model (fluency cost)."""

    kind: Literal["perplexity"]
    text: PromptSource


Metric = Annotated[
    TokenProbMetric | LogitDiffMetric | KLBaselineMetric | PerplexityMetric,
    Field(discriminator="kind"),
]


class ReportSpec(RecipeModel):
    top_tokens: int = Field(
        default=10, ge=0, le=100, description="How many next tokens to list with probabilities."
    )
    metrics: list[Metric] = Field(default_factory=list)
    vector_tokens: int = Field(
        default=0,
        ge=0,
        le=100,
        description="Vector analysis: list the N tokens each vector boosts and suppresses "
        "through the unembedding (raw, and through the final norm as a logit lens).",
    )
