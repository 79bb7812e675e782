"""Where `site: experts` lives: each MoE block's routed-experts module.

transformers 5 stores a MoE block's routed experts fused in one module (3D weights, no module
per expert) called as experts(hidden_states [N, D], top_k_index [N, K], top_k_weights [N, K])
and returning y_t = sum_k top_k_weights[t, k] * E_{top_k_index[t, k]}(h_t) (Qwen2/3-MoE,
Qwen3-Next, Mixtral, OLMoE, PhiMoE, GraniteMoE, DeepSeek V2/V3, GPT-OSS, ...). That contract,
read from the module's forward signature, is what site: experts relies on
(execute/experts.py); a MoE whose experts take other inputs (Llama 4 scales the input by the
router score before its experts) is not recognised, and the site is refused there.

Shared experts (Qwen2-MoE's shared_expert, DeepSeek's shared_experts) are separate MLPs outside
this module: they are not routed experts and site: experts leaves them alone.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch

from recipe_engine.resolve.architectures import Adapter

__all__ = ["ExpertsModule", "routed_experts"]

# The names transformers gives the experts module's 2nd and 3rd parameters, per family.
_INDEX_NAMES = frozenset({"top_k_index", "router_indices", "topk_indices", "selected_experts"})
_WEIGHT_NAMES = frozenset({"top_k_weights", "routing_weights", "topk_weights", "router_scores"})


@dataclass(frozen=True)
class ExpertsModule:
    path: str  # dotted path from the model root
    count: int  # routed experts: indices 0..count-1
    index_arg: str  # name of the parameter holding top_k_index (for keyword calls)
    weights_arg: str  # name of the parameter holding top_k_weights


def _routing_parameters(module: torch.nn.Module) -> tuple[str, str] | None:
    """(index, weights) parameter names when the module's forward is the routed-experts call
    (hidden_states, top_k_index, top_k_weights); None for anything else."""
    try:  # follows functools.wraps (transformers' use_experts_implementation)
        names = list(inspect.signature(type(module).forward).parameters)[1:]
    except (TypeError, ValueError):
        return None
    if len(names) != 3 or names[1] not in _INDEX_NAMES or names[2] not in _WEIGHT_NAMES:
        return None
    return names[1], names[2]


def routed_experts(
    model: torch.nn.Module, adapter: Adapter, n_layers: int
) -> tuple[dict[int, ExpertsModule], dict[int, str]]:
    """Per layer: the routed-experts module of its MoE block, or why site: experts is refused
    there (a dense MLP, an unrecognised MoE)."""
    found: dict[int, ExpertsModule] = {}
    refusals: dict[int, str] = {}
    for layer in range(n_layers):
        mlp_path = adapter.locate("mlp_out", layer).path
        try:
            mlp = model.get_submodule(mlp_path)
        except AttributeError:
            mlp = None
        candidates = [] if mlp is None else list(mlp.named_modules())
        for name, module in candidates:
            count = getattr(module, "num_experts", None)
            params = _routing_parameters(module)
            if params is not None and isinstance(count, int) and count > 0:
                path = f"{mlp_path}.{name}" if name else mlp_path
                found[layer] = ExpertsModule(path, count, *params)
                break
        else:
            refusals[layer] = (
                f"layer {layer} has no routed experts ({mlp_path} is "
                f"{type(mlp).__name__ if mlp is not None else 'missing'}: a dense MLP, or a MoE "
                "whose experts module is not called as experts(hidden_states, top_k_index, "
                "top_k_weights)); use site: mlp_out for the MLP's output, or `module:` with an "
                "explicit path"
            )
    return found, refusals
