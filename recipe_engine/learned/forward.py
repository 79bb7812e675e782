"""One differentiable forward pass through the compiled plan: the sequences' log-likelihoods
with the trainable vector applied exactly where, and as, inference applies it.

The plan is the one compile_plan builds for the vector's intervention (module, port, positions,
per-layer weights); each op's tensor is swapped for the trainable parameter's row, and a sign
per row (BiPO and RePS steer with +v and -v in one batch) rides on the op's per-row strength,
the field merged batch plans already use (execute/ops.py). apply_plan then runs unchanged.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from recipe_engine.execute.steer import apply_plan
from recipe_engine.plan import Plan
from recipe_engine.resolve.loaded_model import LoadedModel

__all__ = ["Sequence", "sequence_logps", "with_parameter"]

Sequence = tuple[tuple[int, ...], tuple[int, ...]]  # (prompt ids, completion ids)


def with_parameter(
    plan: Plan, param: torch.Tensor, rows: dict[int | None, int], signs: torch.Tensor | None
) -> Plan:
    """The plan with each op's vector the parameter's row for its layer (a differentiable cast
    to the model's dtype), and, given signs [B], a strength per row of strength x sign."""
    ops = []
    for op in plan.ops:
        assert op.vector is not None
        vector = param[rows[op.layer]].to(op.vector.dtype)
        row_strength = None
        if signs is not None:
            row_strength = (op.strength * signs).to(op.vector.dtype).view(-1, 1, 1)
        ops.append(replace(op, vector=vector, row_strength=row_strength))
    return Plan(ops)


def _batch(model: LoadedModel, sequences: list[Sequence]) -> tuple[torch.Tensor, ...]:
    """Right-padded ids, attention mask, and the mask of completion tokens (targets)."""
    longest = max(len(p) + len(c) for p, c in sequences)
    pad = model.tokenizer.pad_token_id
    pad = 0 if pad is None else int(pad)
    ids = torch.full((len(sequences), longest), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    target = torch.zeros(len(sequences), longest, dtype=torch.bool)
    for row, (prompt, completion) in enumerate(sequences):
        full = prompt + completion
        ids[row, : len(full)] = torch.tensor(full)
        mask[row, : len(full)] = 1
        target[row, len(prompt) : len(full)] = True
    return ids, mask, target


def sequence_logps(
    model: LoadedModel, plan: Plan, sequences: list[Sequence]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sequence: the summed log-probability of its completion tokens, and their count.
    Differentiable with respect to the plan's tensors; call outside inference mode."""
    ids, mask, target = _batch(model, sequences)
    ids, mask = ids.to(model.device), mask.to(model.device)
    nn = model.nn
    with nn.trace({"input_ids": ids, "attention_mask": mask}, **model.backend_kwargs):
        apply_plan(nn, plan)
        logits = nn.output.logits.save()
    logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    picked = logprobs.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    wanted = target[:, 1:].to(picked.device)
    total = torch.where(wanted, picked, torch.zeros_like(picked)).sum(dim=1)
    return total.cpu(), wanted.sum(dim=1).cpu().to(total.dtype)
