"""A trained low-rank intervention's tensors (LoReFT: h + R^T (W h + b - R h)) held as one tensor,
so it travels, is cached and is written to vector files like every vector.

Layout: [r, 2D + 1], row i = R_i | W_i | b_i (R: columns 0..D-1, W: D..2D-1, b: the last
column); one per layer for a per-layer intervention: [L, r, 2D + 1].
"""

from __future__ import annotations

import torch

__all__ = ["LOWRANK_LAYOUT", "pack_lowrank", "packed_width", "unpack_lowrank"]

LOWRANK_LAYOUT = "[rank, 2*width+1]: row i = R_i | W_i | b_i ([layers, ...] one per layer)"


def pack_lowrank(rotation: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """(R [.., r, D], W [.., r, D], b [.., r]) -> [.., r, 2D + 1]."""
    return torch.cat([rotation, weight, bias.unsqueeze(-1)], dim=-1)


def packed_width(packed: torch.Tensor) -> int | None:
    """The width D the packed tensor acts on, or None when it is no packed form."""
    columns = int(packed.shape[-1])
    if packed.dim() < 2 or columns < 3 or columns % 2 == 0:
        return None
    return (columns - 1) // 2


def unpack_lowrank(packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[.., r, 2D + 1] -> (R, W, b)."""
    width = packed_width(packed)
    if width is None:
        raise ValueError(f"shape {list(packed.shape)} is no packed low-rank intervention")
    return packed[..., :width], packed[..., width : 2 * width], packed[..., 2 * width]
