"""What a generation keeps of each step's logits: the per-step reduction.

The report reads, per generated step, only the probability mass of the token sets of
`token_prob` metrics with `at: generated`, and whether the step's logits were finite (the
NaN/Inf check). Everything else it shows (top tokens, `at: next`, `logit_diff`, `kl_baseline`)
reads the next-token logits after the prompt: the first step only. So each step is reduced
inside the trace, on the model's device, to a [B, 1 + S] float32 row (finite flag, then one
mass per token set); the rows of a batch are stacked on the device and copied to the host once.
Full per-step logits are kept only when a caller asks for them (tests that compare them with
a reference).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["FINITE_ONLY", "StepReduction", "finite_rows", "reduce_step", "token_ids"]

TokenSet = tuple[int, ...]


@dataclass(frozen=True)
class StepReduction:
    """What each generated step is reduced to. `token_sets`: the id sets whose probability
    mass the report averages over the generation; `keep_logits`: also keep every step's full
    logits (they stay on the device until the batch ends)."""

    token_sets: tuple[TokenSet, ...] = ()
    keep_logits: bool = False


FINITE_ONLY = StepReduction()  # no metric reads the generated steps: only the NaN/Inf check


def token_ids(tokenizer: Any, words: list[str]) -> list[int]:
    """A word counts as its first token, with and without a leading space."""
    ids: list[int] = []
    for word in words:
        for variant in (word, " " + word.lstrip()):
            encoded = tokenizer(variant, add_special_tokens=False)["input_ids"]
            if encoded and encoded[0] not in ids:
                ids.append(int(encoded[0]))
    return ids


# Every logit times 2^-100 is at most 2^28 in magnitude (float32's largest is below 2^128), so
# a row of V of them sums to at most V x 2^28: finite for any vocabulary, while NaN and Inf
# propagate through the sum. One matrix-vector product: ~15x cheaper on CPU than
# `isfinite(x).all(-1)`, which builds a [B, V] bool tensor every step.
_PROBE = 2.0**-100


def finite_rows(logits: torch.Tensor) -> torch.Tensor:
    """[B, V] float32 -> [B] bool: the row holds no NaN and no Inf (= isfinite(x).all(-1))."""
    probe = torch.full((logits.shape[-1],), _PROBE, dtype=logits.dtype, device=logits.device)
    return torch.isfinite(logits @ probe)


def reduce_step(
    logits: torch.Tensor, reduction: StepReduction, step: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One step's [B, V] logits -> ([B, 1 + S] float32 on their device, the logits themselves
    when they must be kept: at the first step (the next-token logits) or on request)."""
    full = logits.float()
    columns = [finite_rows(full).float()]
    if reduction.token_sets:
        # The same expression as report/metrics.token_mass, so the numbers are identical.
        probs = torch.softmax(full, dim=-1)
        columns.extend(probs[..., list(ids)].sum(dim=-1) for ids in reduction.token_sets)
    kept = logits if step == 0 or reduction.keep_logits else None
    return torch.stack(columns, dim=-1), kept
