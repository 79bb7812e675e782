"""Token positions -> a boolean mask over the chunk of tokens a forward pass processes.

The mask is computed inside the traced forward from the model's own `attention_mask`, so the
same code serves trace, generate (every step) and persistent edits, whatever the batch:
    step 0  the chunk is the whole left-padded prompt batch: attention_mask == chunk
    step k  the chunk is one new token per row (KV cache): attention_mask is longer
Ranks count each row's real tokens (padding excluded), so index 0 is a prompt's first real token
and -1 its last, whatever the padding. See recipe_engine/format/positions.py for the table.
"""

from __future__ import annotations

import re
from typing import Any

import torch

__all__ = ["ALL", "NONE", "position_mask"]

ALL = "all"  # every position of the chunk: no masking needed
NONE = "none"  # no position of the chunk: the op is skipped this step

_SLICE = re.compile(r"^(-?\d+)?:(-?\d+)?$")


def _bound(value: int | None, length: torch.Tensor, default: torch.Tensor) -> torch.Tensor:
    if value is None:
        return default
    bound = torch.full_like(length, value)
    if value < 0:
        bound = bound + length
    return bound.clamp(min=0).minimum(length)


def position_mask(positions: Any, attention_mask: torch.Tensor, chunk: int) -> torch.Tensor | str:
    """[B, chunk, 1] bool mask, or ALL / NONE when no tensor is needed."""
    step0 = chunk == attention_mask.shape[1]
    if not step0:
        return ALL if positions in ("all", "last", "generated") else NONE
    if positions == "generated":
        return NONE
    real = attention_mask[:, -chunk:].bool()
    if positions in ("all", "prompt"):
        return ALL if bool(real.all()) else real.unsqueeze(-1)
    if positions == "last":
        mask = torch.zeros_like(real)
        mask[:, -1] = True  # left padding: the last column is every row's last real token
        return mask.unsqueeze(-1)
    ranks = real.long().cumsum(dim=1) - 1  # rank of each real token within its row
    length = real.long().sum(dim=1, keepdim=True)
    if isinstance(positions, list):
        mask = torch.zeros_like(real)
        for index in positions:
            target = index + length if index < 0 else torch.full_like(length, index)
            mask |= (ranks == target) & real
        return mask.unsqueeze(-1)
    match = _SLICE.match(str(positions))
    if not match:
        raise ValueError(f"unsupported positions {positions!r}")
    start = _bound(
        int(match.group(1)) if match.group(1) else None, length, torch.zeros_like(length)
    )
    stop = _bound(int(match.group(2)) if match.group(2) else None, length, length)
    return ((ranks >= start) & (ranks < stop) & real).unsqueeze(-1)
