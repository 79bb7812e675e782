"""The trainable tensors of a `kind: trained` spec: a vector (form vector), or LoReFT's low-rank
intervention (form lowrank: h + R^T (W h + b - R h), arXiv 2404.03592).

R is kept orthonormal by construction: torch.nn.utils.parametrizations.orthogonal (Householder
reflections for r < D, the matrix exponential for r = D) maps an unconstrained parameter to a
matrix with orthonormal rows at every step, so Adam moves on that parameter and R never leaves
the manifold (no projection after the step). R starts as a seeded random orthonormal matrix (QR
of a Gaussian), W = R and b = 0, so the edit W h + b - R h is zero: training starts from the
unsteered model, as a vector starts from zero. Weight decay applies to W and b only (decaying
the parametrization's parameter would pull R toward its starting point, not toward zero).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn.utils.parametrizations import orthogonal

from recipe_engine.format.trained import DEFAULT_RANK, TrainedVector
from recipe_engine.learned.forward import Parameter
from recipe_engine.vectors.lowrank import LOWRANK_LAYOUT, pack_lowrank, unpack_lowrank

__all__ = ["LowRankTrainable", "Trainable", "VectorTrainable", "orthonormality_error"]


class VectorTrainable:
    """One vector per row [n, D], from zero; max_norm rescales each row after a step."""

    def __init__(self, spec: TrainedVector, n_rows: int, width: int) -> None:
        self.spec = spec
        self.param = torch.zeros(n_rows, width, dtype=torch.float32, requires_grad=True)

    def groups(self) -> list[dict[str, Any]]:
        return [{"params": [self.param], "weight_decay": self.spec.weight_decay}]

    def current(self) -> Parameter:
        return self.param

    def after_step(self) -> None:
        if self.spec.max_norm is not None:
            with torch.no_grad():
                norms = self.param.norm(dim=-1, keepdim=True).clamp_min(1e-12)
                self.param.mul_(torch.clamp(self.spec.max_norm / norms, max=1.0))

    def snapshot(self) -> torch.Tensor:
        """The tensor kept and stored: [n, D]."""
        return self.param.detach().clone()

    def record(self, kept: torch.Tensor) -> dict[str, Any]:
        return {"form": "vector"}


class _Rotation(torch.nn.Module):
    """Holds R [n, r, D]; the orthogonal parametrization makes each R[i] have orthonormal rows."""

    def __init__(self, start: torch.Tensor, seed: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros_like(start))
        # The parametrization completes R [r, D] into a D x D orthogonal base with columns drawn
        # from torch's global generator: seeded here (and the global state left as it was), so
        # a rebuild starts from the same base and stays bit-identical.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            orthogonal(self)
            with torch.no_grad():
                # the parametrization's right inverse: weight reads `start`
                self.weight = start  # type: ignore[assignment]


class LowRankTrainable:
    """R (orthonormal rows, parametrized), W and b per row: [n, r, D], [n, r, D], [n, r]."""

    def __init__(self, spec: TrainedVector, n_rows: int, width: int) -> None:
        self.spec = spec
        rank = spec.rank or DEFAULT_RANK
        generator = torch.Generator().manual_seed(spec.seed)
        gaussian = torch.randn(n_rows, width, rank, generator=generator)
        start = torch.linalg.qr(gaussian).Q.transpose(-1, -2).contiguous()  # [n, r, D]
        self.rotation = _Rotation(start, spec.seed)
        self.weight = start.clone().requires_grad_(True)
        self.bias = torch.zeros(n_rows, rank, requires_grad=True)

    def groups(self) -> list[dict[str, Any]]:
        return [
            {"params": list(self.rotation.parameters()), "weight_decay": 0.0},
            {"params": [self.weight, self.bias], "weight_decay": self.spec.weight_decay},
        ]

    def current(self) -> Parameter:
        return (self.rotation.weight, self.weight, self.bias)

    def after_step(self) -> None:
        return None  # R is orthonormal by construction

    def snapshot(self) -> torch.Tensor:
        """The packed tensor kept and stored: [n, r, 2D + 1] (vectors/lowrank.py)."""
        with torch.no_grad():
            r, w, b = (t.detach().clone() for t in self.current())
        return pack_lowrank(r, w, b)

    def record(self, kept: torch.Tensor) -> dict[str, Any]:
        rotation, _, _ = unpack_lowrank(kept)
        return {
            "form": "lowrank",
            "rank": int(rotation.shape[-2]),
            "layout": LOWRANK_LAYOUT,
            "orthonormality_error": float(f"{orthonormality_error(rotation):.3g}"),
            "orthogonal_map": "torch.nn.utils.parametrizations.orthogonal",
        }


def orthonormality_error(rotation: torch.Tensor) -> float:
    """max |R R^T - I| over every row block of R [.., r, D]."""
    gram = rotation.double() @ rotation.double().transpose(-1, -2)
    eye = torch.eye(gram.shape[-1], dtype=torch.float64)
    return float((gram - eye).abs().max())


Trainable = VectorTrainable | LowRankTrainable
