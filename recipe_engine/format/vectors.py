"""`vectors:` named steering vectors, each from exactly one source `kind`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from recipe_engine.format.base import RecipeModel
from recipe_engine.format.positions import AfterMarker
from recipe_engine.format.prompts import PromptSource
from recipe_engine.format.sites import MODULE_FIELD, SITE_FIELD, VECTOR_NAME_PATTERN, Site
from recipe_engine.format.trained import TrainedVector

__all__ = [
    "ActivationVector",
    "ContrastiveVector",
    "ExprVector",
    "FileVector",
    "MeanActivationVector",
    "ProbeVector",
    "RandomVector",
    "SaeFeatureVector",
    "TrainedVector",
    "VectorSpec",
]

ReadPosition = Annotated[
    Literal["last", "mean", "system", "user", "assistant"] | int | AfterMarker,
    Field(
        description="Which token's activation to read: last (each prompt's last real token), "
        "mean (over real tokens; padding and tokenizer-added markers such as a BOS excluded), "
        "an index (negative from the end), or the mean over a role's tokens (system | user | "
        "assistant: chat prompts) or over the tokens after a literal text ({after: TEXT, "
        'tokens: N}; CAA: {after: "(", tokens: 1} reads the answer letter).'
    ),
]


class _VectorBase(RecipeModel):
    description: str | None = Field(default=None, description="What this vector is for.")
    normalize: Literal["none", "unit"] = Field(
        default="none",
        description="unit: rescale the built vector to norm 1, so `strength` is its norm.",
    )


class _ReadsActivations(_VectorBase):
    layer: int = Field(description="Layer to read (negative counts from the end).")
    site: Site = SITE_FIELD
    module: str | None = MODULE_FIELD
    position: ReadPosition = "last"


class ContrastiveVector(_ReadsActivations):
    """Difference between activations on positive and negative prompts (CAA / ActAdd)."""

    kind: Literal["contrastive"]
    positive: PromptSource = Field(description="Prompts showing the concept.")
    negative: PromptSource = Field(description="Prompts showing its opposite.")
    method: Literal["mean_diff", "pca_diff", "pca_center"] = Field(
        default="mean_diff",
        description="mean_diff: mean(pos) - mean(neg). pca_diff: first principal component of "
        "paired differences (sign toward positive). pca_center: first principal component of "
        "all activations centred per class pair.",
    )
    paired: bool = Field(
        default=False,
        description="Positive and negative prompts are pairs (same count, same order); "
        "required by pca_diff.",
    )


class ProbeVector(_ReadsActivations):
    """Direction of a logistic-regression probe trained on labelled texts."""

    kind: Literal["probe"]
    data: str = Field(
        min_length=1,
        description='JSONL file, relative to the recipe: one {"text": ..., "label": 0|1} per line.',
    )
    text_field: str = Field(default="text", min_length=1)
    label_field: str = Field(default="label", min_length=1)
    test_fraction: float = Field(
        default=0.2, gt=0, lt=1, description="Share held out to report the probe's accuracy."
    )
    regularization: float = Field(
        default=1.0, gt=0, description="Inverse L2 strength (C in scikit-learn terms)."
    )
    seed: int = Field(default=0, ge=0, description="Seed of the train/test split.")


class FileVector(_VectorBase):
    """A vector stored in a safetensors file (never pickle)."""

    kind: Literal["file"]
    path: str = Field(min_length=1, description="A .safetensors file, relative to the recipe.")
    key: str | None = Field(
        default=None,
        min_length=1,
        description="Tensor name in the file; may be omitted when the file holds one tensor.",
    )
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="Expected SHA-256 of the file (lowercase hex); a mismatch is an error.",
    )


class SaeFeatureVector(FileVector):
    """One feature of a sparse autoencoder in sae-lens's layout: row `feature` of W_dec in
    `path` (sae_weights.safetensors, with cfg.json beside it naming the hook point)."""

    kind: Literal["sae_feature"]  # type: ignore[assignment]
    key: str | None = Field(default="W_dec", min_length=1, description="The decoder matrix.")
    feature: int = Field(ge=0, description="The feature: a row of the decoder matrix.")


class ActivationVector(_VectorBase):
    """The activation of one prompt at a site (for patching or as a direction)."""

    kind: Literal["activation"]
    prompt: str = Field(min_length=1)
    layer: int = Field(description="Layer to read (negative counts from the end).")
    site: Site = SITE_FIELD
    module: str | None = MODULE_FIELD
    position: Literal["last", "mean", "all"] | int = Field(
        default="last",
        description="last | mean | an index | all (one vector per token, patched position by "
        "position).",
    )


class MeanActivationVector(_ReadsActivations):
    """Mean activation over many prompts (the reference for mean ablation)."""

    kind: Literal["mean_activation"]
    prompts: PromptSource
    position: ReadPosition = Field(
        default="mean",
        description="mean (over real tokens; padding and tokenizer-added markers such as a BOS "
        "excluded) | last | an index | system | user | assistant | {after: TEXT, tokens: N}.",
    )


class RandomVector(_VectorBase):
    """A seeded Gaussian direction of a given norm: the control every steering claim needs."""

    kind: Literal["random"]
    seed: int = Field(default=0, ge=0)
    norm: float = Field(default=1.0, gt=0, description="Norm of the vector.")
    dim: int | None = Field(
        default=None, ge=1, description="Dimension; default the model's hidden size."
    )


class ExprVector(_VectorBase):
    """Arithmetic on other vectors: `a - 0.5 * b`, `unit(a) + unit(b)`, `proj(a, b)`."""

    kind: Literal["expr"]
    expr: str = Field(
        min_length=1,
        description="Names of other vectors, numbers, + - * / and parentheses, and the "
        "functions unit(v), proj(v, onto), reject(v, from). Parsed, never evaluated as Python.",
    )
    orthogonalize_against: list[Annotated[str, Field(pattern=VECTOR_NAME_PATTERN)]] = Field(
        default_factory=list,
        description="Remove these vectors' directions from the result (Gram-Schmidt, in order).",
    )


VectorSpec = Annotated[
    ContrastiveVector
    | ProbeVector
    | FileVector
    | SaeFeatureVector
    | ActivationVector
    | MeanActivationVector
    | RandomVector
    | ExprVector
    | TrainedVector,
    Field(discriminator="kind"),
]

VECTOR_KINDS = (
    "contrastive",
    "probe",
    "file",
    "sae_feature",
    "activation",
    "mean_activation",
    "random",
    "expr",
    "trained",
)
