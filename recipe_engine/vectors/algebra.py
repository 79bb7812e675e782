"""Vector algebra of the recipe format: the functions an `expr` vector may call, and the first
principal direction the PCA methods take."""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["FUNCTIONS", "first_pc", "proj", "unit"]


def unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm().clamp_min(1e-12)


def proj(v: torch.Tensor, onto: torch.Tensor) -> torch.Tensor:
    u = unit(onto)
    return (v @ u) * u


FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "unit": unit,
    "proj": proj,
    "reject": lambda v, other: v - proj(v, other),
}


def first_pc(data: torch.Tensor, sign_reference: torch.Tensor) -> torch.Tensor:
    """Unit first principal direction of the rows of `data`, oriented along `sign_reference`."""
    _, _, vh = torch.linalg.svd(data.double(), full_matrices=False)
    direction = vh[0].float()
    return direction if float(direction @ sign_reference) >= 0 else -direction
