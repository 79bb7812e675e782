"""Architecture adapters: where each site lives in each model family.

A site is read or written at a *port* of a module:
    resid_pre   block input            (port: input of the decoder block)
    resid_post  block output           (port: output of the decoder block)
    attn_out    attention output       (port: output of the attention module, first element)
    mlp_out     MLP output             (port: output of the MLP module)
    heads       per-head slices of the input of the attention output projection
Paths are relative to the model root, with {layer} for the block index. Families with the same
layout share an adapter; the generic fallback finds the block list by its length.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import torch

__all__ = ["ADAPTERS", "Adapter", "Port", "SiteLocation", "adapter_for", "envoy_at"]

Port = Literal["input", "output"]


@dataclass(frozen=True)
class SiteLocation:
    path: str  # dotted path from the model root, {layer} already substituted
    port: Port


@dataclass(frozen=True)
class Adapter:
    family: str
    blocks: str  # path of the ModuleList of decoder blocks
    attn: str  # attention module, relative to a block
    mlp: str  # MLP module, relative to a block
    out_proj: str  # attention output projection, relative to a block
    final_norm: str
    unembed: str = "lm_head"

    def locate(self, site: str, layer: int) -> SiteLocation:
        block = f"{self.blocks}.{layer}"
        if site == "resid_pre":
            return SiteLocation(block, "input")
        if site == "resid_post":
            return SiteLocation(block, "output")
        if site == "attn_out":
            return SiteLocation(f"{block}.{self.attn}", "output")
        if site == "mlp_out":
            return SiteLocation(f"{block}.{self.mlp}", "output")
        if site == "heads":
            return SiteLocation(f"{block}.{self.out_proj}", "input")
        raise ValueError(f"unknown site {site!r}")


_LLAMA_LIKE = dict(
    blocks="model.layers",
    attn="self_attn",
    mlp="mlp",
    out_proj="self_attn.o_proj",
    final_norm="model.norm",
)

ADAPTERS: dict[str, Adapter] = {
    "gpt2": Adapter("gpt2", "transformer.h", "attn", "mlp", "attn.c_proj", "transformer.ln_f"),
    "llama": Adapter("llama", **_LLAMA_LIKE),
    "mistral": Adapter("mistral", **_LLAMA_LIKE),
    "qwen2": Adapter("qwen2", **_LLAMA_LIKE),
    "qwen3": Adapter("qwen3", **_LLAMA_LIKE),
    "gemma": Adapter("gemma", **_LLAMA_LIKE),
    "gemma2": Adapter("gemma2", **_LLAMA_LIKE),
    "gemma3_text": Adapter("gemma3_text", **_LLAMA_LIKE),
    "phi3": Adapter("phi3", **_LLAMA_LIKE),
    "gpt_neox": Adapter(
        "gpt_neox",
        "gpt_neox.layers",
        "attention",
        "mlp",
        "attention.dense",
        "gpt_neox.final_layer_norm",
        "lm_head",
    ),
}


def _module_path(root: torch.nn.Module, target: torch.nn.Module) -> str | None:
    for name, module in root.named_modules():
        if module is target:
            return name
    return None


def _generic(model: torch.nn.Module, n_layers: int) -> Adapter:
    """Find the decoder blocks (the ModuleList with n_layers entries) and guess the rest."""
    blocks = [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.ModuleList) and len(m) == n_layers
    ]
    if not blocks:
        raise LookupError(
            f"no list of {n_layers} blocks found in {type(model).__name__}; give "
            "`module:` paths in the recipe instead of sites"
        )
    blocks_path, block_list = blocks[0]
    first = block_list[0]
    children = dict(first.named_modules())

    def find(*candidates: str) -> str:
        for candidate in candidates:
            if candidate in children:
                return candidate
        return candidates[0]

    attn = find("self_attn", "attn", "attention", "self_attention")
    norm = _find_final_norm(model, blocks_path)
    out_proj = find(f"{attn}.o_proj", f"{attn}.out_proj", f"{attn}.dense", f"{attn}.c_proj")
    unembed = "lm_head"
    output = getattr(model, "get_output_embeddings", lambda: None)()
    if isinstance(output, torch.nn.Module):
        unembed = _module_path(model, output) or unembed
    return Adapter(
        "generic", blocks_path, attn, find("mlp", "feed_forward", "ffn"), out_proj, norm, unembed
    )


def _find_final_norm(model: torch.nn.Module, blocks: str) -> str:
    """The norm applied after the last block: a root-level child of the block list's parent."""
    parent = blocks.rsplit(".", 1)[0] if "." in blocks else ""
    modules = dict(model.named_modules())
    for name in ("norm", "ln_f", "final_layer_norm", "final_layernorm", "norm_f"):
        path = f"{parent}.{name}" if parent else name
        if path in modules:
            return path
    return ""


def adapter_for(
    model: torch.nn.Module, model_type: str, n_layers: int, override: str | None
) -> Adapter:
    """The adapter for a model: `override` (a recipe's model.architecture) first, then the
    config's model_type, else the generic discovery. The unembedding path always comes from the
    model itself (transformers renames it between versions, e.g. GPT-NeoX's embed_out)."""
    key = override or model_type
    adapter = _generic(model, n_layers) if key == "generic" else ADAPTERS.get(key)
    if adapter is None:
        adapter = _generic(model, n_layers)
    output = getattr(model, "get_output_embeddings", lambda: None)()
    if isinstance(output, torch.nn.Module):
        path = _module_path(model, output)
        if path:
            adapter = replace(adapter, unembed=path)
    return adapter


def envoy_at(root: Any, path: str) -> Any:  # nnsight's Envoy is untyped
    """The nnsight Envoy at a dotted path; list indices use [] (getattr would fail)."""
    node = root
    for part in path.split("."):
        node = node[int(part)] if part.isdigit() else getattr(node, part)
    return node
