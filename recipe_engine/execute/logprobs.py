"""Log-probabilities of tokens under the (steered) model, computed on the model's device: the
log-softmax of each position's logits, the chosen token's entry and the top k entries. Only
those small tensors are copied to the host; a full-vocabulary row never is.

Two sources: the prompt's own tokens (one traced forward pass over the prompt, the plan applied
as at the first generation step: `prompt_logprobs`), and each generated token (the logits of
the step that produced it: `StepLogprobs`, filled while `generate_pass` runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from recipe_engine.plan import Plan
from recipe_engine.resolve.loaded_model import LoadedModel

__all__ = ["StepLogprobs", "TokenLogprob", "prompt_logprobs"]


@dataclass(frozen=True)
class TokenLogprob:
    """One token: its id, its log-probability (None: the first token of a prompt, which
    nothing predicts) and the k most likely tokens at its position, best first."""

    token: int
    logprob: float | None
    top: tuple[tuple[int, float], ...]


def _top(lp: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top k of [..., V] log-probabilities (k 0: empty), on their device."""
    if k == 0:
        empty = lp[..., :0]
        return empty, empty.long()
    values, indices = lp.topk(k, dim=-1)
    return values, indices


@dataclass
class StepLogprobs:
    """Filled step by step during one generate call: `remember` inside the trace body (the
    step's logits), `chosen` when the step's token is known (the generate call's streamer).
    Everything stays on the device until `rows`."""

    k: int
    last: list[torch.Tensor] = field(default_factory=list)  # the last step's log-softmax
    tops: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    picked: list[torch.Tensor] = field(default_factory=list)  # [B] per step

    def remember(self, logits: torch.Tensor) -> None:
        lp = torch.log_softmax(logits.float(), dim=-1)
        self.last[:] = [lp]
        self.tops.append(_top(lp, self.k))

    def chosen(self, tokens: torch.Tensor) -> None:
        lp = self.last[0]
        self.picked.append(lp.gather(-1, tokens.reshape(-1, 1).to(lp.device)).squeeze(-1))

    def rows(self, new: list[list[int]]) -> list[list[TokenLogprob]]:
        """Per row, one entry per step of `new` (that row's tokens, pad after its end)."""
        if not self.picked:
            return [[] for _ in new]
        picked = torch.stack(self.picked, dim=1).cpu()  # [B, n]
        values = torch.stack([v for v, _ in self.tops], dim=1).cpu()  # [B, n, k]
        indices = torch.stack([i for _, i in self.tops], dim=1).cpu()
        out: list[list[TokenLogprob]] = []
        for row, tokens in enumerate(new):
            entries = []
            for step, token in enumerate(tokens[: picked.shape[1]]):
                top = zip(indices[row, step].tolist(), values[row, step].tolist(), strict=True)
                entries.append(TokenLogprob(token, float(picked[row, step]), tuple(top)))
            out.append(entries)
        return out


def _padded(model: LoadedModel, ids: Sequence[Sequence[int]]) -> tuple[torch.Tensor, list[int]]:
    """The batch as the trace pads it (the tokenizer's padding side), and each row's offset."""
    width = max(len(row) for row in ids)
    pad = model.tokenizer.pad_token_id
    pad = model.tokenizer.eos_token_id if pad is None else pad
    left = getattr(model.tokenizer, "padding_side", "right") == "left"
    rows, offsets = [], []
    for row in ids:
        gap = [int(pad or 0)] * (width - len(row))
        rows.append(gap + list(row) if left else list(row) + gap)
        offsets.append(len(gap) if left else 0)
    return torch.tensor(rows, dtype=torch.long), offsets


def prompt_logprobs(
    model: LoadedModel, plan: Plan, ids: Sequence[Sequence[int]], k: int
) -> list[list[TokenLogprob]]:
    """Per prompt, one entry per token: the first with no log-probability, each next one's
    under the model with `plan` applied (one forward pass; the caller holds no lock)."""
    import nnsight

    from recipe_engine.execute.steer import apply_plan

    padded, offsets = _padded(model, ids)
    nn = model.nn
    with model.lock, torch.inference_mode():
        with nn.trace([list(row) for row in ids], **model.backend_kwargs):
            record = nnsight.save({})
            apply_plan(nn, plan, record=record)
            logits = nn.output.logits.save()
        lp = torch.log_softmax(logits.float(), dim=-1)[:, :-1]  # position t predicts t + 1
        target = padded[:, 1:].to(lp.device)
        picked = lp.gather(-1, target.unsqueeze(-1)).squeeze(-1).cpu()
        values, indices = (t.cpu() for t in _top(lp, k))
    out: list[list[TokenLogprob]] = []
    for row, tokens in enumerate(ids):
        start = offsets[row]
        entries = [TokenLogprob(int(tokens[0]), None, ())]
        for t in range(1, len(tokens)):
            at = start + t - 1
            top = zip(indices[row, at].tolist(), values[row, at].tolist(), strict=True)
            entries.append(TokenLogprob(int(tokens[t]), float(picked[row, at]), tuple(top)))
        out.append(entries)
    return out
