"""Models that ship with the engine, addressed as `model.id: builtin:NAME`.

This registry is torch-free: it holds each model's config (or points at the config.json it
ships with), so `steer validate --check-model` checks layers and dimensions of a builtin recipe
without loading anything. Two kinds:
- random builtins are built from their config and a seed on first use
  (`recipe_engine.resolve.builtin_build`), with a byte-level tokenizer;
- trained builtins ship their weights and tokenizer inside the package, under
  `recipe_engine/builtin_weights/NAME/`, and load offline from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BUILTINS", "BUILTIN_PREFIX", "BuiltinModel", "builtin_name"]

BUILTIN_PREFIX = "builtin:"


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    description: str
    model_type: str  # transformers model_type of the config
    config: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    weights: str | None = None  # folder under builtin_weights/ for trained builtins

    @property
    def weights_dir(self) -> Path | None:
        if self.weights is None:
            return None
        return Path(__file__).resolve().parent / "builtin_weights" / self.weights


# Byte-level vocabulary: 256 bytes + <|endoftext|>. Needs no training, so it is deterministic.
_BYTE_VOCAB = 257

BUILTINS: dict[str, BuiltinModel] = {
    "tiny-sentiment": BuiltinModel(
        name="tiny-sentiment",
        description="The embedded default: a 4-layer, 192-wide GPT-2 the project trains itself "
        "(python -m recipe_engine.training.train) on a synthetic corpus of short reviews and "
        "neutral texts with two concepts, sentiment and topic. Steering it really works.",
        model_type="gpt2",
        config={
            "n_layer": 4,
            "n_embd": 192,
            "n_head": 4,
            "n_positions": 128,
            "vocab_size": 1368,
            "bos_token_id": 0,
            "eos_token_id": 0,
            "pad_token_id": 0,
        },
        weights="tiny-sentiment",
    ),
    "tiny-random": BuiltinModel(
        name="tiny-random",
        description="4-layer, 64-wide GPT-2 with seeded random weights and a byte tokenizer: "
        "for plumbing, tests and CI, not for meaningful steering.",
        model_type="gpt2",
        config={
            "n_layer": 4,
            "n_embd": 64,
            "n_head": 4,
            "n_positions": 256,
            "vocab_size": _BYTE_VOCAB,
            "bos_token_id": 256,
            "eos_token_id": 256,
        },
    ),
    "tiny-random-llama": BuiltinModel(
        name="tiny-random-llama",
        description="4-layer, 64-wide Llama (grouped-query attention) with seeded random "
        "weights and a byte tokenizer.",
        model_type="llama",
        config={
            "num_hidden_layers": 4,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 256,
            "vocab_size": _BYTE_VOCAB,
            "bos_token_id": 256,
            "eos_token_id": 256,
            "pad_token_id": 256,
        },
    ),
}


def builtin_name(model_id: str) -> str | None:
    return model_id[len(BUILTIN_PREFIX) :] if model_id.startswith(BUILTIN_PREFIX) else None
