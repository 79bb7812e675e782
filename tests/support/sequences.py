"""Right-padded token batches of (prompt, completion) id lists, as the trained-steering tests
feed plain transformers for their reference losses."""

from __future__ import annotations

import torch

__all__ = ["padded_batch"]


def padded_batch(sequences: list[tuple[list[int], list[int]]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(input ids [B, T], attention mask [B, T]): each prompt + completion, zero-padded right."""
    longest = max(len(p) + len(c) for p, c in sequences)
    ids = torch.zeros(len(sequences), longest, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, (prompt, completion) in enumerate(sequences):
        ids[row, : len(prompt) + len(completion)] = torch.tensor(prompt + completion)
        mask[row, : len(prompt) + len(completion)] = 1
    return ids, mask
