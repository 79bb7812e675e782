"""The Plan: the typed contract between compile (compiler.py) and execute (execute/).

A Plan is a list of concrete operations in the model's execution order. Each PlanOp names the
module path and port it touches, the positions (parsed: format/positions.py), the op, the
prepared tensor and the effective strength (strength x layer weight). Everything a trace body
reads is a tensor, a number or a string, so the same plan runs locally and on NDIF.

Per-row plans: an op may carry a Gate (a compiled `when:`, decided per row inside the trace at
step 0) and, in a plan merged for one batch of rows with different plans (execute/rows.py), a
row mask and a strength per row. Rows an op does not select keep their activations exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from recipe_engine.format.positions import PositionSelector, TextPositions
from recipe_engine.resolve.architectures import Port

__all__ = ["ConditionRead", "Gate", "LowRank", "Plan", "PlanOp"]


@dataclass(frozen=True, eq=False)
class LowRank:
    """op lowrank's tensors (LoReFT): h <- h + s R^T (W h + b - R h), in the model's dtype."""

    rotation: torch.Tensor  # R [r, D], orthonormal rows
    weight: torch.Tensor  # W [r, D]
    bias: torch.Tensor  # b [r]

    @property
    def rank(self) -> int:
        return int(self.rotation.shape[0])

    @property
    def width(self) -> int:
        return int(self.rotation.shape[-1])


@dataclass(frozen=True, eq=False)
class ConditionRead:
    """One leaf of a `when:`: where it reads, how the prompt is reduced, scored and compared."""

    vector_name: str
    layer: int
    site: str
    path: str
    port: Port
    order: int  # event order of (path, port) in the forward pass
    direction: torch.Tensor  # unit length, float32, on the model's device
    aggregate: str  # mean | last
    score: str  # cosine | projection
    compare: str  # above | below
    threshold: float
    skip_first: bool  # the tokenizer adds a leading marker: a mean leaves it out
    logit: tuple[float, float] | None = None  # score probability: the probe's (scale, bias)

    def describe(self) -> str:
        sign = ">" if self.compare == "above" else "<"
        score = {"cosine": "cos", "projection": "proj", "probability": "P"}[self.score]
        return (
            f"{score}({self.aggregate} layer {self.layer} {self.site}, {self.vector_name}) "
            f"{sign} {self.threshold:g}"
        )


@dataclass(frozen=True, eq=False)
class Gate:
    """A compiled `when:` tree: a leaf reads one condition; all / any / not combine."""

    kind: str  # leaf | all | any | not
    read: ConditionRead | None = None
    children: tuple[Gate, ...] = ()

    def leaves(self) -> list[ConditionRead]:
        if self.read is not None:
            return [self.read]
        return [leaf for child in self.children for leaf in child.leaves()]

    def describe(self) -> str:
        if self.read is not None:
            return self.read.describe()
        if self.kind == "not":
            return f"not ({self.children[0].describe()})"
        return f" {self.kind} ".join(f"({c.describe()})" for c in self.children)


@dataclass(frozen=True)
class PlanOp:
    index: int  # position of the intervention in the recipe
    label: str
    op: str
    layer: int | None
    site: str  # a site name, or "module" for the escape hatch
    path: str
    port: Port
    positions: PositionSelector
    strength: float
    vector_name: str | None = None
    vector: torch.Tensor | None = None  # prepared: dtype/device of the model, sliced to heads
    columns: torch.Tensor | None = None  # heads site: feature columns of the selected heads
    heads: tuple[int, ...] | None = None
    order: tuple[int, int] = (0, 0)
    gate: Gate | None = None  # `when:`: the op acts only on rows whose gate fires
    rows: torch.Tensor | None = None  # [B, 1, 1] bool: the rows of a merged batch plan it acts on
    row_strength: torch.Tensor | None = None  # [B, 1, 1]: per-row strength in a merged plan
    lowrank: LowRank | None = None  # op lowrank: R, W, b (vector is None)
    # site experts: the routed experts acted on, how many the block has, and the names of the
    # experts module's (top_k_index, top_k_weights) parameters (resolve/experts.py)
    experts: tuple[int, ...] | None = None
    experts_count: int | None = None
    experts_args: tuple[str, str] | None = None

    def describe(self) -> dict[str, Any]:  # a JSON object (`steer explain`, the run report)
        vec = self.vector
        return {
            "intervention": self.index,
            "label": self.label,
            "op": self.op,
            "layer": self.layer,
            "site": self.site,
            "module": self.path,
            "port": self.port,
            "heads": list(self.heads) if self.heads is not None else None,
            # heads site: [start, end) of each head's columns in the projection's input
            "head_columns": None if self.columns is None else _column_ranges(self.columns),
            **(
                {}
                if self.experts is None
                else {"experts": list(self.experts), "experts_count": self.experts_count}
            ),
            "positions": self.positions.written,
            "positions_per_step": self.positions.per_step(),
            "vector": self.vector_name,
            "vector_norm": None if vec is None else round(float(vec.float().norm()), 6),
            "strength": self.strength,
            **({} if self.lowrank is None else {"rank": self.lowrank.rank}),
            "when": None if self.gate is None else self.gate.describe(),
        }


def _column_ranges(columns: torch.Tensor) -> list[list[int]]:
    """Consecutive runs of column indices as [start, end) pairs."""
    runs: list[list[int]] = []
    for column in columns.tolist():
        if runs and runs[-1][1] == column:
            runs[-1][1] = column + 1
        else:
            runs.append([column, column + 1])
    return runs


@dataclass
class Plan:
    ops: list[PlanOp] = field(default_factory=list)

    def gates(self) -> list[tuple[int, Gate]]:
        """(intervention index, gate) of every gated intervention, once each, in op order."""
        seen: dict[int, tuple[int, Gate]] = {}
        for op in self.ops:
            if op.gate is not None and id(op.gate) not in seen:
                seen[id(op.gate)] = (op.index, op.gate)
        return list(seen.values())

    def reads(self) -> list[ConditionRead]:
        """Every condition read, once each, in forward order."""
        found = {id(leaf): leaf for _, gate in self.gates() for leaf in gate.leaves()}
        return sorted(found.values(), key=lambda leaf: leaf.order)

    def describe(self) -> list[dict[str, Any]]:
        return [op.describe() for op in self.ops]

    def text_positions(self) -> list[TextPositions]:
        """The role and marker positions of the ops: each batch's token masks are computed
        from its text before the trace (execute/positions.py)."""
        found = (op.positions for op in self.ops)
        return list(dict.fromkeys(p for p in found if isinstance(p, TextPositions)))
