"""Tiny random-weight configs of the decoder architectures the matrix test covers.

3 layers, width 64, 4 heads, a 257-token byte vocabulary; MoE families get 4 experts (2 per
token); each family only what its config needs to build at that size (rotary widths, layer
types of hybrids, MLA ranks). Module paths are written out by hand per family (REFERENCE), not
taken from the engine's adapters: they are the independent side of the comparison.
"""

from __future__ import annotations

from typing import Any

BASE: dict[str, Any] = {
    "hidden_size": 64,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": 128,
    "vocab_size": 257,
    "bos_token_id": 256,
    "eos_token_id": 256,
    "pad_token_id": 256,
}
MOE: dict[str, Any] = {
    "num_experts": 4,
    "num_local_experts": 4,
    "num_experts_per_tok": 2,
    "moe_intermediate_size": 32,
    "shared_expert_intermediate_size": 32,
}
_ROPE = {"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}}
_MLA = {
    "num_key_value_heads": 4,
    "kv_lora_rank": 16,
    "qk_rope_head_dim": 8,  # the config's head_dim: not the width o_proj reads per head
    "qk_nope_head_dim": 8,
    "v_head_dim": 16,  # o_proj reads 4 heads x 16
    "n_routed_experts": 4,
    "first_k_dense_replace": 1,
    "n_group": 1,
    "topk_group": 1,
}
EXTRA: dict[str, dict[str, Any]] = {
    "ministral": _ROPE,
    "hunyuan_v1_dense": _ROPE,
    "gptj": {"rotary_dim": 8},
    "opt": {"ffn_dim": 128},
    "gemma3n_text": {
        "num_kv_shared_layers": 0,
        "layer_types": ["sliding_attention", "sliding_attention", "full_attention"],
        "laurel_rank": 8,
        "hidden_size_per_layer_input": 8,
        "vocab_size_per_layer_input": 257,
        "intermediate_size": [128] * 3,
        "activation_sparsity_pattern": [0.0] * 3,
    },
    "qwen3_next": {
        **MOE,
        # a hybrid: layer 1, the one steered, is full attention
        "layer_types": ["linear_attention", "full_attention", "linear_attention"],
        "linear_num_key_heads": 2,
        "linear_num_value_heads": 4,
        "linear_key_head_dim": 16,
        "linear_value_head_dim": 16,
    },
    "deepseek_v2": {**_MLA, **MOE, "q_lora_rank": None},
    "deepseek_v3": {**_MLA, **MOE, "q_lora_rank": 24},
}
for _moe in ("qwen2_moe", "qwen3_moe", "mixtral", "phimoe", "olmoe", "granitemoe", "gpt_oss"):
    EXTRA[_moe] = {**MOE, **EXTRA.get(_moe, {})}
EXTRA["llama4_text"] = {**MOE, "intermediate_size_mlp": 128}

_NAMES = (
    "llama mistral ministral qwen2 qwen3 qwen2_moe qwen3_moe qwen3_next mixtral gemma gemma2 "
    "gemma3_text gemma3n_text phi phi3 phimoe gpt2 gpt_neox gptj opt bloom falcon olmo olmo2 "
    "olmo3 olmoe granite granitemoe stablelm cohere cohere2 starcoder2 gpt_oss smollm3 glm "
    "glm4 exaone4 ernie4_5 helium nemotron seed_oss llama4_text hunyuan_v1_dense apertus "
    "deepseek_v2 deepseek_v3 arcee"
)
ARCHITECTURES = _NAMES.split(" ")


def config_kwargs(model_type: str) -> dict[str, Any]:
    """Keyword arguments of AutoConfig.for_model for a tiny model of this family."""
    # 16-wide heads (64 / 4) also where the family's default head_dim is fixed and large
    # (not for MLA, whose head_dim is its rotary width, nor Falcon, which derives it)
    own = {} if model_type in _DERIVED_HEAD_DIM else {"head_dim": 16}
    return {**BASE, **own, **EXTRA.get(model_type, {})}


_DERIVED_HEAD_DIM = ("falcon", "deepseek_v2", "deepseek_v3")


# (blocks, attention, mlp, attention output projection), written out by hand per family
_LLAMA = ("model.layers", "self_attn", "mlp", "self_attn.o_proj")
REFERENCE: dict[str, tuple[str, str, str, str]] = {
    "gpt2": ("transformer.h", "attn", "mlp", "attn.c_proj"),
    "gptj": ("transformer.h", "attn", "mlp", "attn.out_proj"),
    "bloom": ("transformer.h", "self_attention", "mlp", "self_attention.dense"),
    "falcon": ("transformer.h", "self_attention", "mlp", "self_attention.dense"),
    "gpt_neox": ("gpt_neox.layers", "attention", "mlp", "attention.dense"),
    "opt": ("model.decoder.layers", "self_attn", "fc2", "self_attn.out_proj"),
    "phi": ("model.layers", "self_attn", "mlp", "self_attn.dense"),
    "granitemoe": ("model.layers", "self_attn", "block_sparse_moe", "self_attn.o_proj"),
    "llama4_text": ("model.layers", "self_attn", "feed_forward", "self_attn.o_proj"),
}


def reference_paths(model_type: str) -> tuple[str, str, str, str]:
    return REFERENCE.get(model_type, _LLAMA)
