"""`model:` which network the recipe steers, and how it is loaded."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, StrictBool

from recipe_engine.format.base import RecipeModel

__all__ = ["ARCHITECTURES", "Architecture", "ModelSpec"]

Architecture = Literal[
    "gpt2",
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma",
    "gemma2",
    "gemma3_text",
    "phi3",
    "gpt_neox",
    "generic",
]
ARCHITECTURES: tuple[str, ...] = get_args(Architecture)


class ModelSpec(RecipeModel):
    id: str = Field(
        min_length=1,
        description=(
            "builtin:NAME (shipped with the engine), a hub repo id already in the local cache "
            "(org/name), a local folder or .gguf file starting with ./, ../ or / (relative to "
            "the recipe), or pkg:DISTRIBUTION/PATH (a .gguf file an installed package ships)."
        ),
    )
    gguf_file: str | None = Field(
        default=None,
        min_length=6,
        pattern=r"^[^/\\]+\.[gG][gG][uU][fF]$",
        description=(
            "A GGUF file name inside the folder model.id names (transformers' gguf_file). "
            "GGUF weights are dequantized once and cached as safetensors (README, Real models)."
        ),
    )
    revision: str | None = Field(
        default=None, min_length=1, description="Hub revision (branch, tag or commit) to pin."
    )
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        default="float32", description="Weight and activation dtype."
    )
    device: str = Field(
        default="auto",
        pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$",
        description="auto | cpu | cuda | cuda:N | mps. auto picks cuda when available.",
    )
    trust_remote_code: StrictBool = Field(
        default=False,
        description=(
            "Run the model repository's own Python code. Off unless this recipe itself sets it "
            "to true; an included fragment cannot turn it on."
        ),
    )
    architecture: Architecture | None = Field(
        default=None,
        description="Override the architecture adapter (site -> module mapping). Default: "
        "detected from the model config.",
    )
