"""The operations, as pure functions of an activation h [B, T, D].

s is the effective strength (strength x layer weight); u a unit vector (prepared at compile).
"""

from __future__ import annotations

import torch

from recipe_engine.plan import PlanOp

__all__ = ["transform"]


def _along(h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Component of h along unit u: (h . u) u."""
    return (h @ u).unsqueeze(-1) * u


def _lowrank_edit(h: torch.Tensor, op: PlanOp) -> torch.Tensor:
    """LoReFT's edit R^T (W h + b - R h): the component of h in R's row space replaced by the
    learned W h + b (R has orthonormal rows)."""
    assert op.lowrank is not None
    r, w, b = op.lowrank.rotation, op.lowrank.weight, op.lowrank.bias
    if r.device != h.device or r.dtype != h.dtype:  # remote: the tensors travel on the CPU
        r, w, b = (t.to(device=h.device, dtype=h.dtype) for t in (r, w, b))
    return (h @ w.T + b - h @ r.T) @ r


def transform(h: torch.Tensor, op: PlanOp, vector: torch.Tensor | None = None) -> torch.Tensor:
    """`vector` overrides op.vector: per-position vectors arrive aligned to h, [B, T, D]."""
    # A merged batch plan carries one strength per row ([B, 1, 1]), in the vector's dtype.
    s = op.strength if op.row_strength is None else op.row_strength
    v = op.vector if vector is None else vector
    if v is not None and (v.device != h.device or v.dtype != h.dtype):
        # A remote server holds the activations on its own device; the vector travels with
        # the request as a CPU tensor. Locally the plan already matches: no copy.
        v = v.to(device=h.device, dtype=h.dtype)
    name = op.op
    if name == "add":
        assert v is not None
        return h + s * v
    if name == "set":
        assert v is not None
        return (s * v).expand_as(h)
    if name == "scale":
        return s * h if v is None else h + (s - 1.0) * _along(h, v)
    if name == "zero":
        return torch.zeros_like(h)
    if name == "mean_ablate":
        assert v is not None
        return v.expand_as(h)
    if name == "project_out":
        assert v is not None
        return h - s * _along(h, v)
    if name == "clamp":
        assert v is not None
        return h - _along(h, v) + s * v
    if name == "lowrank":
        return h + s * _lowrank_edit(h, op)
    raise ValueError(f"unknown op {name!r}")
