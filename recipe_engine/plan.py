"""The Plan: the typed contract between compile (compiler.py) and execute (execute/).

A Plan is a list of concrete operations in the model's execution order. Each PlanOp names the
module path and port it touches, the positions (parsed: format/positions.py), the op, the
prepared tensor and the effective strength (strength x layer weight). Everything a trace body
reads is a tensor, a number or a string, so the same plan runs locally and on NDIF.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from recipe_engine.format.positions import PositionSelector, TextPositions
from recipe_engine.resolve.architectures import Port

__all__ = ["Plan", "PlanOp"]


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
            "positions": self.positions.written,
            "positions_per_step": self.positions.per_step(),
            "vector": self.vector_name,
            "vector_norm": None if vec is None else round(float(vec.float().norm()), 6),
            "strength": self.strength,
        }


@dataclass
class Plan:
    ops: list[PlanOp] = field(default_factory=list)

    def describe(self) -> list[dict[str, Any]]:
        return [op.describe() for op in self.ops]

    def text_positions(self) -> list[TextPositions]:
        """The role and marker positions of the ops: each batch's token masks are computed
        from its text before the trace (execute/positions.py)."""
        found = (op.positions for op in self.ops)
        return list(dict.fromkeys(p for p in found if isinstance(p, TextPositions)))
