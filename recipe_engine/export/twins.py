"""Rebuild a model as an equivalent family whose config has the bias switches: the twin's config
and the weights renamed or rescaled into it (export/families.py says why each twin is exact).

* Mistral, Ministral, Qwen2: Llama's module tree and weight names as they are (Qwen2's q/k/v
  biases are Llama's attention_bias; the o_proj bias it adds stays zero). Where a sliding
  window cuts attention the twin is SmolLM3 instead (the same tree): the same window on the
  same layer types, RoPE on every layer (no_rope_layers all 1).
* Phi-3: fused projections split: `qkv_proj` rows are [q | k | v], `gate_up_proj` rows
  [gate | up] (Phi3MLP chunks gate first and computes up * act(gate), Llama act(gate) * up).
* Gemma: its RMSNorm multiplies by (1 + w), Llama's by w: the twin's norm weights are 1 + w
  (rounded to the weights' dtype once, as Gemma rounds 1 + w in float32 itself); Gemma scales
  the token embedding by sqrt(hidden_size) in the forward, the twin's table is pre-scaled, and
  the unembedding, tied to the unscaled table, is untied.
* Mixtral as GraniteMoE: its MoE block renamed (`mlp` -> `block_sparse_moe`, `gate` ->
  `router`), the multipliers at 1 and the attention scale at Mixtral's head_dim ** -0.5.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["twin_config", "twin_state"]

# what only the source family's forward reads; the twin's config must not carry it
_DROPPED = (
    "model_type",
    "architectures",
    "sliding_window",
    "use_sliding_window",
    "max_window_layers",
    "layer_types",
    "original_max_position_embeddings",
    "use_bidirectional_attention",
)
# Mixtral's MoE block `mlp` (router `gate`) is GraniteMoE's `block_sparse_moe` (`router`); the
# stacked experts keep their names and layout ([experts, 2 x inter, hidden] gate first)
_MIXTRAL_TO_GRANITEMOE = (
    (".mlp.gate.weight", ".block_sparse_moe.router.weight"),
    (".mlp.experts.", ".block_sparse_moe.experts."),
)
_GEMMA_NORMS = ("input_layernorm.weight", "post_attention_layernorm.weight")


def twin_config(config: Any, model_type: str) -> Any:
    """The config of the equivalent family: the same numbers, the twin's class."""
    from transformers import AutoConfig

    values = config.to_dict()
    family = values.get("model_type")
    for key in _DROPPED:
        values.pop(key, None)
    if model_type == "smollm3":
        # the source's window on the layers it slides on (all of them unless its config says)
        layers = int(config.num_hidden_layers)
        kinds = getattr(config, "layer_types", None) or ["sliding_attention"] * layers
        values |= {"use_sliding_window": True, "sliding_window": int(config.sliding_window)}
        values |= {"layer_types": list(kinds), "no_rope_layers": [1] * layers}
    if model_type == "granitemoe":
        head_dim = getattr(config, "head_dim", None)
        head_dim = head_dim or config.hidden_size // config.num_attention_heads
        values |= {"embedding_multiplier": 1.0, "residual_multiplier": 1.0}
        values |= {"logits_scaling": 1.0, "attention_multiplier": head_dim**-0.5}
        values["head_dim"] = head_dim
    twin = AutoConfig.for_model(model_type, **values)
    if family == "qwen2":
        twin.attention_bias = True
    if family == "gemma":
        twin.tie_word_embeddings = False
    return twin


def _split_phi3(state: dict[str, torch.Tensor], config: Any) -> dict[str, torch.Tensor]:
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    q_rows = config.num_attention_heads * head_dim
    kv_rows = config.num_key_value_heads * head_dim
    out: dict[str, torch.Tensor] = {}
    for name, value in state.items():
        if name.endswith("self_attn.qkv_proj.weight"):
            stem = name.removesuffix("qkv_proj.weight")
            q, k, v = torch.split(value, [q_rows, kv_rows, kv_rows], dim=0)
            out |= {f"{stem}q_proj.weight": q, f"{stem}k_proj.weight": k}
            out[f"{stem}v_proj.weight"] = v
        elif name.endswith("mlp.gate_up_proj.weight"):
            stem = name.removesuffix("gate_up_proj.weight")
            gate, up = value.chunk(2, dim=0)
            out |= {f"{stem}gate_proj.weight": gate, f"{stem}up_proj.weight": up}
        else:
            out[name] = value
    return out


def _rescale_gemma(state: dict[str, torch.Tensor], config: Any) -> dict[str, torch.Tensor]:
    out = dict(state)
    for name, value in state.items():
        if name.endswith(_GEMMA_NORMS) or name == "model.norm.weight":
            out[name] = (1.0 + value.float()).to(value.dtype)
    table = state["model.embed_tokens.weight"]
    # GemmaTextScaledWordEmbedding: the looked-up row times sqrt(H) in the table's dtype
    scale = torch.tensor(config.hidden_size**0.5, dtype=table.dtype)
    out["model.embed_tokens.weight"] = table * scale
    out.pop("lm_head.weight", None)  # hf.py copies the unscaled unembedding into the untied head
    return out


def _rename_mixtral(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name, value in state.items():
        for source, target in _MIXTRAL_TO_GRANITEMOE:
            if source in name:
                name = name.replace(source, target)
                break
        out[name] = value
    return out


def twin_state(config: Any, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` (the source model's state dict, not modified) in the twin's names and values."""
    family = getattr(config, "model_type", None)
    if family == "mixtral":
        return _rename_mixtral(state)
    if family == "phi3":
        return _split_phi3(state, config)
    if family == "gemma":
        return _rescale_gemma(state, config)
    return state
