"""`run:` how the steered model is exercised."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from recipe_engine.format.base import RecipeModel
from recipe_engine.format.prompt_groups import RunPrompts

__all__ = ["GenerationSpec", "RunSpec"]


class GenerationSpec(RecipeModel):
    max_new_tokens: int = Field(default=20, ge=1, le=4096)
    min_new_tokens: int | None = Field(
        default=None, ge=0, le=4096, description="Keep generating past EOS until this many."
    )
    do_sample: bool = Field(default=False, description="false: greedy decoding.")
    temperature: float | None = Field(default=None, gt=0, description="Only with do_sample.")
    top_k: int | None = Field(default=None, ge=1, description="Only with do_sample.")
    top_p: float | None = Field(default=None, gt=0, le=1, description="Only with do_sample.")
    repetition_penalty: float | None = Field(default=None, gt=0)
    seed: int | None = Field(
        default=None, ge=0, description="Seed for sampling; makes sampled runs reproducible."
    )


class RunSpec(RecipeModel):
    mode: Literal["trace", "generate", "edit"] = Field(
        default="generate",
        description="trace: one forward pass, next-token distribution. generate: steering on "
        "every generation step. edit: a persistent edit of the model, then every prompt "
        "is generated through it; the edit is cleared afterwards.",
    )
    prompts: RunPrompts = Field(
        description="Prompts to run: a list, or {file: PATH}. List items may be prompt groups "
        "({prompts, strength, interventions}) that run in the same batches, each with its own "
        "plan."
    )
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    compare_baseline: bool = Field(
        default=True, description="Also run the prompts without interventions, side by side."
    )
    samples: int = Field(
        default=1,
        ge=1,
        le=1000,
        description="Continuations sampled per prompt (needs generation.do_sample): text "
        "metrics then come with a 95% confidence interval.",
    )
    batch_size: int = Field(default=8, ge=1, le=4096, description="Prompts per forward pass.")
    backend: Literal["local", "remote", "remote-local", "vllm"] = Field(
        default="local",
        description="Where the traces run. local: this machine. remote: NDIF, through "
        "nnsight's remote=True (a hub model id NDIF hosts; the API key comes from the "
        "NDIF_API_KEY environment variable, never from a recipe). remote-local: serialize "
        "every trace exactly as for NDIF and run it here (an offline dry run of remote). "
        "vllm: nnsight's vLLM integration (pip extra `vllm`, a CUDA GPU).",
    )
