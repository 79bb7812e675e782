"""Roles and markers -> which tokens of a left-padded batch they cover.

From the tokenizer's character offsets of the very tokenization the trace runs (same tokenizer,
same batch, same padding): a token belongs to a role when its characters overlap that role's
text (resolve/chat.py), and follows a marker when it holds a character past the marker's last
occurrence. The trace (execute/positions.py) and vector extraction read these masks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

from recipe_engine.errors import UsageError
from recipe_engine.format.positions import (
    MarkerPositions,
    PositionSelector,
    RolePositions,
    TextPositions,
)

__all__ = ["MarkerNotFound", "TextMasks", "text_masks"]

TextMasks = dict[TextPositions, torch.Tensor]  # selector -> [B, T] bool over the padded batch


class MarkerNotFound(UsageError):
    """A prompt of the batch lacks an `{after: TEXT}` marker. Runs check their prompts first
    (execute/marker_check.py) and vector builds name the vector (vectors/extraction.py); a
    caller that did neither gets this, about the batch."""

    def __init__(self, selector: MarkerPositions, row: int, text: str) -> None:
        self.marker, self.row, self.text = selector.after, row, str(text)
        super().__init__(
            f"positions {{after: {selector.after!r}}}: prompt {row + 1} of its batch does not "
            f"contain that text: {str(text)[:80]!r}"
        )


def _token_spans(tokenizer: Any, batch: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """([B, T, 2] character offsets, [B, T] real) of the batch as the trace tokenizes it."""
    if not getattr(tokenizer, "is_fast", False):
        raise UsageError(
            "positions by role or marker read each token's character offsets, which only a "
            "fast (Rust) tokenizer gives; this model's tokenizer is a slow one"
        )
    encoded = tokenizer(list(batch), return_tensors="pt", padding=True, return_offsets_mapping=True)
    return encoded["offset_mapping"], encoded["attention_mask"].bool()


def _role_row(
    selector: RolePositions, text: str, starts: torch.Tensor, ends: torch.Tensor
) -> torch.Tensor:
    mask = torch.zeros_like(starts, dtype=torch.bool)
    for span in getattr(text, "spans", ()):  # a plain text has no turns
        if span.role == selector.role:
            mask |= (starts < span.end) & (ends > span.start)
    return mask


def _marker_row(
    selector: MarkerPositions, text: str, starts: torch.Tensor, ends: torch.Tensor, row: int
) -> torch.Tensor:
    found = text.rfind(selector.after)
    if found < 0:
        raise MarkerNotFound(selector, row, text)
    mask = ends > found + len(selector.after)
    if selector.tokens is not None:
        mask &= mask.long().cumsum(dim=0) <= selector.tokens
    return mask


def text_masks(
    selectors: Iterable[PositionSelector], batch: Sequence[str], tokenizer: Any
) -> TextMasks:
    """Per role or marker selector: which tokens of the left-padded batch it covers. A token
    belongs to a role when its characters overlap that role's text (resolve/chat.py), and
    follows a marker when it holds a character past the marker's last occurrence; tokens the
    tokenizer added (a BOS: no characters) and padding belong to neither."""
    wanted = list(dict.fromkeys(s for s in selectors if isinstance(s, TextPositions)))
    if not wanted:
        return {}
    offsets, real = _token_spans(tokenizer, batch)
    starts, ends = offsets[..., 0], offsets[..., 1]
    covered = real & (ends > starts)
    masks: TextMasks = {}
    for selector in wanted:
        rows = []
        for row, text in enumerate(batch):
            # Tokens without characters (added by the tokenizer) and padding: before any text.
            s, e = starts[row].where(covered[row], -1), ends[row].where(covered[row], -1)
            if isinstance(selector, RolePositions):
                rows.append(_role_row(selector, text, s, e))
            else:
                rows.append(_marker_row(selector, text, s, e, row))
        masks[selector] = torch.stack(rows)
    return masks
