"""Token positions -> a boolean mask over the chunk of tokens a forward pass processes.

The mask is computed inside the traced forward from the model's own `attention_mask`, so the
same code serves trace, generate (every step) and persistent edits, whatever the batch:
    step 0  the chunk is the whole left-padded prompt batch: attention_mask == chunk
    step k  the chunk is one new token per row (KV cache): attention_mask is longer
Ranks count each row's real tokens (padding excluded), so index 0 is a prompt's first real token
and -1 its last, whatever the padding. See recipe_engine/format/positions.py for the table.
"""

from __future__ import annotations

import torch

from recipe_engine.format.positions import IndexPositions, NamedPositions, PositionSelector

__all__ = ["ALL", "NONE", "position_mask"]

ALL = "all"  # every position of the chunk: no masking needed
NONE = "none"  # no position of the chunk: the op is skipped this step


def _bound(value: int | None, length: torch.Tensor, default: torch.Tensor) -> torch.Tensor:
    if value is None:
        return default
    bound = torch.full_like(length, value)
    if value < 0:
        bound = bound + length
    return bound.clamp(min=0).minimum(length)


def position_mask(
    positions: PositionSelector, attention_mask: torch.Tensor, chunk: int
) -> torch.Tensor | str:
    """[B, chunk, 1] bool mask, or ALL / NONE when no tensor is needed."""
    step0 = chunk == attention_mask.shape[1]
    if not step0:
        return ALL if positions.steers_later_steps else NONE
    real = attention_mask[:, -chunk:].bool()
    if isinstance(positions, NamedPositions):
        if positions.name == "generated":
            return NONE
        if positions.name in ("all", "prompt"):
            return ALL if bool(real.all()) else real.unsqueeze(-1)
        mask = torch.zeros_like(real)  # last
        mask[:, -1] = True  # left padding: the last column is every row's last real token
        return mask.unsqueeze(-1)
    ranks = real.long().cumsum(dim=1) - 1  # rank of each real token within its row
    length = real.long().sum(dim=1, keepdim=True)
    if isinstance(positions, IndexPositions):
        mask = torch.zeros_like(real)
        for index in positions.indices:
            target = index + length if index < 0 else torch.full_like(length, index)
            mask |= (ranks == target) & real
        return mask.unsqueeze(-1)
    start = _bound(positions.start, length, torch.zeros_like(length))
    stop = _bound(positions.stop, length, length)
    return ((ranks >= start) & (ranks < stop) & real).unsqueeze(-1)
