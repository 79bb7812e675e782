"""`when:` inside the trace: score each row's prompt at step 0, hold its gate for later steps.

A condition read (plan.ConditionRead) reduces the activation at its site over each row's prompt
tokens (the mean of the real tokens, leaving out the tokenizer's own leading marker, or the last
token), scores it against the unit direction and compares. The scores and each gate's fired
flags go into `record`, a dict saved out of the trace: later generation steps (one new token
per row under the KV cache) read the gate from it instead of scoring again, and the report reads
the per-row scores that decided it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from recipe_engine.plan import ConditionRead, Gate, Plan

__all__ = ["GateOutcome", "gate_outcomes", "gate_rows", "score_read"]


def _aggregate(value: torch.Tensor, read: ConditionRead, real: torch.Tensor) -> torch.Tensor:
    """[B, T, D] -> float32 [B, D] over each row's real prompt tokens (left padding)."""
    if read.aggregate == "last":
        return value[:, -1, :].float()
    keep = real.bool()
    if read.skip_first:
        ranks = keep.long().cumsum(dim=1) - 1
        words = keep & (ranks > 0)
        keep = torch.where(words.any(dim=1, keepdim=True), words, keep)
    weights = keep.float() / keep.float().sum(dim=1, keepdim=True).clamp_min(1.0)
    return (value.float() * weights.unsqueeze(-1)).sum(dim=1)


def score_read(value: torch.Tensor, read: ConditionRead, attention_mask: torch.Tensor) -> Any:
    """Each row's score [B] for one condition, from the activation at its site at step 0."""
    real = attention_mask[:, -value.shape[1] :].to(value.device)
    pooled = _aggregate(value, read, real)
    direction = read.direction.to(pooled.device)
    along = pooled @ direction
    if read.score == "projection":
        return along
    if read.score == "probability" and read.logit is not None:
        scale, bias = read.logit
        return torch.sigmoid(scale * along + bias)
    return along / pooled.norm(dim=-1).clamp_min(1e-12)


def _fires(gate: Gate, scores: dict[int, torch.Tensor]) -> torch.Tensor:
    if gate.read is not None:
        score = scores[id(gate.read)]
        if gate.read.compare == "above":
            return score > gate.read.threshold
        return score < gate.read.threshold
    parts = [_fires(child, scores) for child in gate.children]
    if gate.kind == "not":
        return ~parts[0]
    combined = parts[0]
    for part in parts[1:]:
        combined = (combined & part) if gate.kind == "all" else (combined | part)
    return combined


def gate_rows(gate: Gate, record: dict[Any, Any]) -> torch.Tensor:
    """[B, 1, 1] bool: the rows this gate steers. Decided once (step 0), then held."""
    key = ("gate", id(gate))
    if key not in record:
        scores = {id(leaf): record[("score", id(leaf))] for leaf in gate.leaves()}
        record[key] = _fires(gate, scores).reshape(-1, 1, 1)
    fired: torch.Tensor = record[key]
    return fired


@dataclass(frozen=True)
class GateOutcome:
    """What decided one conditional intervention for one prompt."""

    intervention: int  # index in the interventions the row's plan was compiled from
    condition: str  # the condition as written out (plan.Gate.describe)
    fired: bool
    scores: tuple[float, ...]  # each leaf's score, in the order the condition writes them


def gate_outcomes(plan: Plan, record: dict[Any, Any], rows: int) -> list[list[GateOutcome]]:
    """Per row of a batch: the outcome of every gated intervention that applies to it."""
    found: list[list[GateOutcome]] = [[] for _ in range(rows)]
    for index, gate in plan.gates():
        key = ("gate", id(gate))
        if key not in record:  # no step ran the gated ops (e.g. positions: generated only)
            scores = {id(leaf): record[("score", id(leaf))] for leaf in gate.leaves()}
            record[key] = _fires(gate, scores).reshape(-1, 1, 1)
        fired = record[key].reshape(-1).tolist()
        leaves = [record[("score", id(leaf))].float().cpu().tolist() for leaf in gate.leaves()]
        applies = [True] * rows
        for op in plan.ops:
            if op.gate is gate and op.rows is not None:
                applies = op.rows.reshape(-1).tolist()
        for row in range(rows):
            if applies[row]:
                decided = tuple(float(s[row]) for s in leaves)
                found[row].append(GateOutcome(index, gate.describe(), bool(fired[row]), decided))
    return found
