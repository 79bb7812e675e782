"""Rows of one batch with different plans: merged into one plan for one trace.

A run's prompts may come in groups that each have their own plan (prompt groups, or a server's
requests with different profiles). For each batch, the plans of its rows are merged into one:
- every row has the same plan: that plan, untouched (a uniform batch costs nothing extra);
- the plans differ only in strengths (the same ops on the same vectors, in the same order): one
  op each, with a strength per row ([B, 1, 1]) and a row mask where some rows have no plan ops;
- otherwise: every plan's ops, each masked to its own rows, in forward order (ops of one plan
  keep their order; ops of different plans touch different rows, so their order is free).
A row an op does not select keeps its activations exactly (torch.where), so each row computes
what it would in a batch of its own plan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from recipe_engine.plan import Plan, PlanOp

__all__ = ["merge_row_plans"]


def _signature(op: PlanOp) -> tuple[object, ...]:
    return (
        op.path,
        op.port,
        op.op,
        op.vector_name,
        op.positions,
        op.heads,
        op.experts,
        op.gate is None,
    )


def _same_shape(a: Plan, b: Plan) -> bool:
    """Whether two plans differ at most in their ops' strengths (same vectors and gates)."""
    if len(a.ops) != len(b.ops):
        return False
    for x, y in zip(a.ops, b.ops, strict=True):
        if _signature(x) != _signature(y) or x.gate is not y.gate:
            return False
        if (x.vector is None) != (y.vector is None):
            return False
        if (
            x.vector is not None
            and y.vector is not None
            and not (x.vector is y.vector or torch.equal(x.vector, y.vector))
        ):
            return False
    return True


def _rows_of(plans: Sequence[Plan], plan: Plan, device: torch.device) -> torch.Tensor:
    mask = torch.tensor([p is plan for p in plans], dtype=torch.bool, device=device)
    return mask.reshape(-1, 1, 1)


def _device(plans: Sequence[Plan]) -> torch.device:
    for plan in plans:
        for op in plan.ops:
            if op.vector is not None:
                return op.vector.device
    return torch.device("cpu")


def merge_row_plans(plans: Sequence[Plan]) -> Plan:
    """One plan for a batch whose row i runs plans[i]."""
    distinct = list({id(p): p for p in plans}.values())
    if len(distinct) == 1:
        return distinct[0]
    device = _device(plans)
    steered = [p for p in distinct if p.ops]
    if steered and all(_same_shape(steered[0], p) for p in steered[1:]):
        covered = torch.tensor([bool(p.ops) for p in plans], dtype=torch.bool, device=device)
        rows = None if bool(covered.all()) else covered.reshape(-1, 1, 1)
        merged: list[PlanOp] = []
        for k, op in enumerate(steered[0].ops):
            dtype = op.vector.dtype if op.vector is not None else torch.float32
            per_row = [p.ops[k].strength if p.ops else 0.0 for p in plans]
            strength = torch.tensor(per_row, dtype=dtype, device=device).reshape(-1, 1, 1)
            merged.append(dataclasses.replace(op, rows=rows, row_strength=strength))
        return Plan(merged)
    ops = [
        dataclasses.replace(op, rows=_rows_of(plans, plan, device))
        for plan in steered
        for op in plan.ops
    ]
    ops.sort(key=lambda op: op.order[0])  # stable: each plan's own order is kept
    return Plan(ops)
