"""Architecture adapters: where each site lives in each model family.

A site is read or written at a *port* of a module:
    resid_pre   block input            (port: input of the decoder block)
    resid_post  block output           (port: output of the decoder block)
    attn_out    attention output       (port: output of the attention module, first element)
    mlp_out     MLP output             (port: output of the MLP module)
    heads       per-head slices of the input of the attention output projection
Paths are relative to the model root, with {layer} for the block index. Families with the same
layout share an adapter; the generic fallback finds the block list by structure (the list of
n_layers modules a trial forward calls in sequence on the residual stream).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any, Literal

import torch

from recipe_engine.model_config import ModelShape

__all__ = [
    "ADAPTERS",
    "Adapter",
    "Port",
    "SiteLocation",
    "adapter_for",
    "envoy_at",
    "heads_problem",
    "projection_input_width",
]

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
    why: str = "the family's dedicated adapter"  # how the block list was chosen (explain)

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


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    return None


def _chained(model: torch.nn.Module, lists: list[tuple[str, torch.nn.ModuleList]]) -> list[str]:
    """The candidate lists whose modules a trial forward calls in order, each on the previous
    one's output: block i's output is block i+1's hidden-state input (the residual stream).

    One 2-token forward with hooks on every candidate's entries; a list whose entries run in
    another order, not at all, or on other tensors (a list of norms, of experts, of per-layer
    projections) fails the check."""
    calls: dict[str, list[tuple[int, torch.Tensor | None, torch.Tensor | None]]] = {
        name: [] for name, _ in lists
    }
    handles = []

    def hook_for(name: str, index: int) -> Any:
        def hook(mod: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
            first = args[0] if args else kwargs.get("hidden_states")
            calls[name].append((index, _first_tensor(first), _first_tensor(out)))

        return hook

    for name, modules in lists:
        for index, block in enumerate(modules):
            handles.append(block.register_forward_hook(hook_for(name, index), with_kwargs=True))
    try:
        parameter = next(model.parameters())
        ids = torch.tensor([[1, 2]], device=parameter.device)
        with torch.no_grad():
            model(input_ids=ids)
    finally:
        for handle in handles:
            handle.remove()
    chained = []
    for name, _ in lists:
        seen = calls[name]
        if [index for index, _, _ in seen] != list(range(len(seen))) or not seen:
            continue
        if all(
            out is not None and nxt is not None and out.shape == nxt.shape and torch.equal(out, nxt)
            for (_, _, out), (_, nxt, _) in pairwise(seen)
        ):
            chained.append(name)
    return chained


def _find_blocks(model: torch.nn.Module, n_layers: int) -> tuple[str, torch.nn.ModuleList, str]:
    """The decoder block list: the ModuleList of n_layers entries that a trial forward calls in
    sequence on the residual stream; (path, list, why it was chosen)."""
    lists = [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.ModuleList) and len(m) == n_layers
    ]
    if not lists:
        raise LookupError(
            f"no list of {n_layers} blocks found in {type(model).__name__}; give "
            "`module:` paths in the recipe instead of sites"
        )
    try:
        chained = _chained(model, lists)
    except Exception as exc:  # a model that cannot run a bare 2-token forward: say so
        name, modules = lists[0]
        return (
            name,
            modules,
            (
                f"the first list of {n_layers} modules; a trial forward to check that its "
                f"modules run in sequence failed ({type(exc).__name__})"
            ),
        )
    if not chained:
        raise LookupError(
            f"none of the lists of {n_layers} modules in {type(model).__name__} "
            f"({', '.join(n for n, _ in lists)}) runs in sequence on one hidden state; give "
            "`module:` paths in the recipe instead of sites, or set model.architecture"
        )
    name = chained[0]
    others = [n for n, _ in lists if n != name]
    rejected = f"; not {', '.join(others)} (not called in sequence on it)" if others else ""
    return (
        name,
        dict(lists)[name],
        (
            f"the list of {n_layers} modules a trial forward calls in sequence, each on the "
            f"previous one's output (the residual stream){rejected}"
        ),
    )


def _generic(model: torch.nn.Module, n_layers: int) -> Adapter:
    """Find the decoder blocks by structure and the modules inside them by name."""
    blocks_path, block_list, why = _find_blocks(model, n_layers)
    children: dict[str, torch.nn.Module] = {}
    for block in block_list:  # hybrids: a name may exist only on some blocks
        children.update(dict(block.named_modules()))

    def find(*candidates: str) -> str:
        for candidate in candidates:
            if candidate in children:
                return candidate
        return candidates[0]

    attn = find("self_attn", "attn", "attention", "self_attention")
    norm = _find_final_norm(model, blocks_path)
    out_proj = find(f"{attn}.o_proj", f"{attn}.out_proj", f"{attn}.dense", f"{attn}.c_proj")
    # The MLP's output: a module named for it, an MoE block (mlp_out is the mixed output of
    # the experts), or, where the MLP is no module of its own (OPT: fc1/fc2 on the block), its
    # last projection, whose output is what the block adds to the residual stream.
    mlp = find("mlp", "feed_forward", "ffn", "block_sparse_moe", "moe", "fc2")
    unembed = "lm_head"
    output = getattr(model, "get_output_embeddings", lambda: None)()
    if isinstance(output, torch.nn.Module):
        unembed = _module_path(model, output) or unembed
    return Adapter("generic", blocks_path, attn, mlp, out_proj, norm, unembed, why)


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


def projection_input_width(module: torch.nn.Module) -> int | None:
    """The input width of a linear projection: nn.Linear's in_features, GPT-2's Conv1D (weight
    stored [in, out]) its nx; None for anything else (nothing to check against)."""
    if isinstance(module, torch.nn.Linear):
        return int(module.in_features)
    nx = getattr(module, "nx", None)
    weight = getattr(module, "weight", None)
    if isinstance(nx, int) and isinstance(weight, torch.Tensor) and weight.dim() == 2:
        return nx
    return None


def heads_problem(model: torch.nn.Module, adapter: Adapter, shape: ModelShape) -> dict[int, str]:
    """Why `site: heads` cannot be placed, by layer: empty where every layer takes it.

    The heads site slices the attention output projection's input into n_heads slices of
    head_dim columns. That width comes from the config; the projection's own in_features says
    what the model really computes. Where they disagree the config's head geometry is not the
    projection's (a family whose values are not head_dim wide), and slicing would act on the
    wrong columns: refuse instead of guessing. Checked per layer: hybrids (Qwen3-Next) have
    softmax attention on some layers only."""
    problems: dict[int, str] = {}
    for layer in range(shape.n_layers):
        path = adapter.locate("heads", layer).path
        try:
            projection = model.get_submodule(path)
        except AttributeError:
            problems[layer] = (
                f"layer {layer} has no attention output projection at {path!r} (adapter "
                f"{adapter.family}; a linear-attention or attention-free layer?), so its heads "
                "cannot be found; steer other layers' heads, or use `module:` with an explicit "
                "path instead of site: heads"
            )
            continue
        width = projection_input_width(projection)
        if width is None or width == shape.heads_width:
            continue
        problems[layer] = (
            f"the attention output projection {path} reads {width} features, but the config "
            f"says {shape.n_heads} heads x {shape.head_dim} ({shape.head_dim_key}) = "
            f"{shape.heads_width}; the heads cannot be placed without guessing, so site: heads "
            "is refused here"
        )
    return problems
