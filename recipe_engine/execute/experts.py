"""site: experts inside a traced forward: the routed experts' outputs, before they are mixed.

The fused experts module (resolve/experts.py) computes, for each of its N tokens,
    y_t = sum_k w[t, k] * E_{i[t, k]}(h_t)        (i: top_k_index, w: top_k_weights, [N, K])
and exposes no expert's own output. The ops of format/interventions.EXPERTS_OPS only ever make
a chosen expert's output an affine function of itself, E' = a E + sum_j c_j v_j, so they are
exact from the module's inputs and output: the routing weights become w * a before the module
runs (a = 0 removes the expert's contribution; the other weights are not renormalized), and
sum_k w[t, k] c_j[t, k] * v_j is added to its output. Ops compose in the order written: each
maps the (a, c) the one before left, per (token, slot).
"""

from __future__ import annotations

from typing import Any

import torch

from recipe_engine.plan import PlanOp

__all__ = ["apply_experts"]

# Ops that change how much of the expert's own output remains (a): they edit the weights.
_REWEIGHTS = frozenset({"set", "zero", "mean_ablate", "scale"})


def _routing(args: tuple[Any, ...], kwargs: dict[str, Any], names: tuple[str, str]) -> Any:
    """(top_k_index, top_k_weights), passed by position (every family) or by name."""
    if len(args) >= 3:
        return args[1], args[2]
    return kwargs[names[0]], kwargs[names[1]]


def _per_token(value: torch.Tensor, rows: int, chunk: int, n: int) -> torch.Tensor:
    """A [B, T or 1, 1] mask or strength as [N, 1] over the module's flattened tokens."""
    return value.expand(rows, chunk, 1).reshape(n, 1)


def apply_experts(
    envoy: Any, active: list[tuple[PlanOp, torch.Tensor | str, Any]], chunk: int
) -> None:
    """Apply one experts module's ops (in order) at its input and output. `active`: each op
    with its position/row mask ([B, T, 1] bool, or a string for every token) and its aligned
    per-position vector ([B, T, D]) if it has one; `chunk`: the tokens per row in this pass."""
    first = active[0][0]
    assert first.experts_args is not None
    args, kwargs = envoy.inputs
    index, weights = _routing(args, kwargs, first.experts_args)
    n = int(index.shape[0])
    rows = n // chunk
    keep = torch.ones_like(weights)  # a, per (token, slot)
    terms: list[tuple[torch.Tensor, torch.Tensor]] = []  # (c_j [N, K], v_j [D] or [N, D])
    for op, mask, aligned in active:
        assert op.experts is not None
        chosen = torch.isin(index, torch.tensor(op.experts, device=index.device))
        if not isinstance(mask, str):
            chosen = chosen & _per_token(mask.to(index.device), rows, chunk, n)
        picked = chosen.to(weights.dtype)
        s: Any = op.strength
        if op.row_strength is not None:
            s = _per_token(op.row_strength.to(weights), rows, chunk, n)
        vector = op.vector if aligned is None else aligned.reshape(n, -1)
        if op.op == "scale":
            factor = 1.0 + (s - 1.0) * picked
        elif op.op == "add":
            factor = None
        else:  # set, zero, mean_ablate: the expert's output (and earlier additions) replaced
            factor = 1.0 - picked
        if factor is not None:
            keep = keep * factor
            terms = [(c * factor, v) for c, v in terms]
        if op.op in ("add", "set"):
            assert vector is not None
            terms.append((s * picked, vector))
        elif op.op == "mean_ablate":
            assert vector is not None
            terms.append((picked, vector))
    if any(op.op in _REWEIGHTS for op, _, _ in active):
        new_weights = weights * keep
        if len(args) >= 3:
            envoy.inputs = ((args[0], args[1], new_weights, *args[3:]), kwargs)
        else:
            envoy.inputs = (args, {**kwargs, first.experts_args[1]: new_weights})
    if not terms:
        return
    out = envoy.output
    total = torch.zeros_like(out)
    for c, v in terms:
        weight = (weights * c).sum(dim=-1, keepdim=True).to(out.dtype)  # [N, 1]
        total = total + weight * v.to(device=out.device, dtype=out.dtype)
    envoy.output = out + total
