"""`report:` what the run prints and measures."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from recipe_engine.format.base import RecipeModel
from recipe_engine.format.prompts import PromptSource

__all__ = [
    "TEXT_METRICS",
    "ConceptMetric",
    "ControlsSpec",
    "FluencyMetric",
    "InstructionMetric",
    "Metric",
    "PromptBaseline",
    "RepetitionMetric",
    "ReportSpec",
]

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


class ConceptMetric(RecipeModel):
    """How much of a concept each generated continuation carries. `probe: VECTOR`: the mean
    projection of the unsteered model's activations over the continuation's tokens (read at the
    vector's layer and site) on the unit vector; `words: [...]`: the fraction of the
    continuation's words that are in the set. Reported as the mean score and the fraction of
    continuations above `threshold`."""

    kind: Literal["concept"]
    name: str = Field(default="concept", min_length=1, description="Reported as concept:NAME.")
    probe: str | None = Field(
        default=None, description="A vector of this recipe, read on the continuations."
    )
    words: TokenList | None = Field(
        default=None, description="Words or phrases (case-insensitive, whole words)."
    )
    classifier: str | None = Field(
        default=None,
        min_length=1,
        description="A transformers sequence-classification model folder (relative to the "
        "recipe; safetensors, loaded offline, never with remote code): the score is the "
        "probability of `label`.",
    )
    label: str | None = Field(
        default=None, min_length=1, description="The classifier's label (its id2label name)."
    )
    threshold: float | None = Field(
        default=None,
        description="A continuation carries the concept when its score is above this. Default: "
        "0 for words (at least one), 0.5 for a classifier, the unsteered continuations' mean "
        "score for a probe.",
    )


class FluencyMetric(RecipeModel):
    """Perplexity of each continuation (given its prompt) under the unsteered model:
    exp(mean over continuations of the mean token negative log-likelihood)."""

    kind: Literal["fluency"]


class RepetitionMetric(RecipeModel):
    """Distinct-n (unique word n-grams / all word n-grams, per continuation, averaged) and the
    longest word n-gram that occurs twice in a continuation (averaged)."""

    kind: Literal["repetition"]
    n: int = Field(default=2, ge=1, le=8, description="n of distinct-n.")


class InstructionMetric(RecipeModel):
    """Whether each answer still answers its prompt. Without `judge`: the similarity of each
    answer to the unsteered answer to the same prompt (cosine of their mean activations, the
    unsteered model, residual stream after `layer`). With `judge: MODEL`: that model's
    probability that the answer addresses the question, P(Yes) / (P(Yes) + P(No)) after a fixed
    judging prompt (README, Evaluating steering on generated text)."""

    kind: Literal["instruction"]
    layer: int = Field(
        default=-1, description="Layer whose output is compared (negative: from the end)."
    )
    judge: str | None = Field(
        default=None,
        min_length=1,
        description="A causal language model that judges each answer, named as model.id names "
        "one: builtin:NAME, a local folder or .gguf file (relative to the recipe; a folder needs "
        "safetensors weights), a model-store folder, or pkg:DISTRIBUTION/PATH. Loaded offline, "
        "once per run, in float32, never with code of its own. Reported as instruction:judge.",
    )


Metric = Annotated[
    TokenProbMetric
    | LogitDiffMetric
    | KLBaselineMetric
    | PerplexityMetric
    | ConceptMetric
    | FluencyMetric
    | RepetitionMetric
    | InstructionMetric,
    Field(discriminator="kind"),
]

# Metrics read on the generated continuations (generate and edit modes only).
TEXT_METRICS = (ConceptMetric, FluencyMetric, RepetitionMetric, InstructionMetric)


class ControlsSpec(RecipeModel):
    random: int = Field(
        ge=0,
        le=256,
        description="Random vectors (seeds 0..N-1) of each steering vector's norm, run with the "
        "same interventions: every metric gets the control mean and sd (8 or more advised).",
    )


class PromptBaseline(RecipeModel):
    """Prompting as a baseline, with how the instruction reaches the model said explicitly."""

    text: str = Field(min_length=1, description="The instruction, e.g. Answer in a positive tone.")
    as_: Literal["system", "prefix"] | None = Field(
        default=None,
        alias="as",
        description="system: a system message of each chat prompt (appended on a new line to a "
        "system message it already has), rendered with the model's chat template; prefix: the "
        "text and a space before each plain-text prompt, or before the last user message of a "
        "chat prompt. Default: system for chat prompts, prefix for plain-text prompts.",
    )


def _baseline_form(value: Any) -> str | None:
    if isinstance(value, str):
        return "text"
    if isinstance(value, (dict, PromptBaseline)):  # a dict when validating, the model dumped
        return "mapping"
    return None


PromptBaselineField = Annotated[
    Annotated[str, Tag("text"), Field(min_length=1)] | Annotated[PromptBaseline, Tag("mapping")],
    Discriminator(
        _baseline_form,
        custom_error_type="prompt_baseline_type",
        custom_error_message="prompt_baseline must be a string or {text: ..., as: system|prefix}",
    ),
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
    controls: ControlsSpec | None = Field(
        default=None, description="Random-vector controls, e.g. {random: 8}."
    )
    prompt_baseline: PromptBaselineField | None = Field(
        default=None,
        description="Prompting as a baseline: the unsteered model run with this instruction "
        "(a system message of chat prompts, the text and a space before plain-text prompts; "
        "{text, as: system|prefix} chooses), scored on the same metrics after the original "
        "prompt.",
    )
