"""Token positions -> a boolean mask over the chunk of tokens a forward pass processes.

The mask is computed inside the traced forward from the model's own `attention_mask`, so the
same code serves trace, generate (every step) and persistent edits, whatever the batch:
    step 0  the chunk is the whole left-padded prompt batch: attention_mask == chunk
    step k  the chunk is one new token per row (KV cache): attention_mask is longer
Ranks count each row's real tokens (padding excluded), so index 0 is a prompt's first real token
and -1 its last, whatever the padding. See recipe_engine/format/positions.py for the table.

Roles and markers (TextPositions) need the prompt's text: `text_masks`
(resolve/chat_tokens.py, where vector extraction reads them too) computes them per batch,
before the trace, from the tokenizer's character offsets of the very tokenization the trace
runs (same tokenizer, same batch, same padding), and the trace reads them at step 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from recipe_engine.format.positions import (
    IndexPositions,
    MarkerPositions,
    NamedPositions,
    PositionSelector,
    RolePositions,
)
from recipe_engine.resolve.chat_tokens import TextMasks, text_masks

__all__ = [
    "ALL",
    "NONE",
    "TextMasks",
    "explain_positions",
    "position_mask",
    "text_masks",
    "touched_positions",
]


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
    positions: PositionSelector,
    attention_mask: torch.Tensor,
    chunk: int,
    text_mask: torch.Tensor | None = None,
) -> torch.Tensor | str:
    """[B, chunk, 1] bool mask, or ALL / NONE when no tensor is needed. `text_mask`: the batch's
    [B, T] mask of a role or marker (text_masks), read at step 0."""
    step0 = chunk == attention_mask.shape[1]
    if not step0:
        return ALL if positions.steers_later_steps else NONE
    real = attention_mask[:, -chunk:].bool()
    if isinstance(positions, (RolePositions, MarkerPositions)):
        if text_mask is None or tuple(text_mask.shape) != tuple(real.shape):
            raise RuntimeError(
                f"positions {positions.written}: the token masks of this batch do not match its "
                f"tokens ({None if text_mask is None else list(text_mask.shape)} vs "
                f"{list(real.shape)})"
            )
        return (text_mask.to(real.device) & real).unsqueeze(-1)
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


def touched_positions(selector: PositionSelector, text: str, tokenizer: Any) -> list[int]:
    """The indices (over the prompt's tokens, as the model reads them) an op steers at step 0."""
    length = len(tokenizer(text)["input_ids"])
    attention = torch.ones(1, length, dtype=torch.long)
    masks = text_masks([selector], [text], tokenizer)
    mask = position_mask(selector, attention, length, masks.get(selector))  # type: ignore[arg-type]
    if isinstance(mask, str):
        return list(range(length)) if mask == ALL else []
    return [int(i) for i in mask[0, :, 0].nonzero().flatten()]


def explain_positions(
    plan: Any, prompts: Sequence[str], tokenizer: Any, shown: int = 6
) -> list[dict[str, Any]]:
    """Per prompt, per intervention of the plan: the token indices it steers at step 0 (over the
    prompt's tokens as the model reads them, BOS included), the text of the first `shown`, and
    what it steers at later steps (`steer explain`)."""
    firsts = {op.index: op for op in reversed(plan.ops)}  # one op per intervention
    out: list[dict[str, Any]] = []
    for text in prompts:
        ids = tokenizer(text)["input_ids"]
        rows = []
        for index in sorted(firsts):
            op = firsts[index]
            touched = touched_positions(op.positions, text, tokenizer)
            rows.append(
                {
                    "intervention": index,
                    "label": op.label,
                    "positions": op.positions.written,
                    "step0": touched,
                    "tokens": [tokenizer.decode([ids[i]]) for i in touched[:shown]],
                    "later_steps": op.positions.per_step()["later steps"],
                }
            )
        out.append({"prompt": str(text), "tokens": len(ids), "interventions": rows})
    return out
