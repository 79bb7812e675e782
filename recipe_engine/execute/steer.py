"""The body that runs inside every traced forward pass: apply a Plan to the model.

Called from within `model.trace()`, each step of `model.generate()`, or a `model.edit()`.
It reads the model's own inputs to know which tokens this pass processes, so one body serves
every mode. Ops on the same module port are read once, applied in order, written once.
"""

from __future__ import annotations

from typing import Any

import torch

from recipe_engine.execute.experts import apply_experts
from recipe_engine.execute.gates import gate_rows, score_read
from recipe_engine.execute.ops import transform
from recipe_engine.execute.positions import ALL, NONE, TextMasks, position_mask
from recipe_engine.format.positions import ALL_POSITIONS, PositionSelector, TextPositions
from recipe_engine.plan import ConditionRead, Plan, PlanOp
from recipe_engine.resolve.architectures import Port, envoy_at

__all__ = ["apply_plan", "batch_layout"]


def batch_layout(root: Any) -> tuple[int, torch.Tensor]:
    """How many tokens this forward processes, and the attention mask over all tokens so far.

    transformers drops `attention_mask` when a batch has no padding; the tokens already in the
    KV cache are then read from `position_ids` (positions start at 0 with no padding), or from
    the cache itself.
    """
    args, kwargs = root.inputs
    ids = kwargs.get("input_ids")
    if ids is None and args:
        ids = args[0]
    chunk = int(ids.shape[1])
    mask = kwargs.get("attention_mask")
    if mask is not None:
        return chunk, mask
    positions = kwargs.get("position_ids")
    cache = kwargs.get("cache", kwargs.get("past_key_values"))
    if positions is not None:
        past = int(positions[0, 0])
    elif cache is not None and hasattr(cache, "get_seq_length"):
        past = int(cache.get_seq_length())
    else:
        past = 0
    return chunk, torch.ones(ids.shape[0], past + chunk, dtype=torch.long, device=ids.device)


def _per_position(
    op: PlanOp, mask: torch.Tensor | str, attention_mask: torch.Tensor, chunk: int
) -> tuple[torch.Tensor | None, torch.Tensor | str]:
    """A [T_v, D] vector (activation, position: all) patched position by position: row i goes
    to each prompt's i-th real token at step 0; prompt tokens past T_v and later steps are left
    alone."""
    vector = op.vector
    if vector is None or vector.dim() != 2:
        return None, mask
    if chunk != attention_mask.shape[1]:
        return None, NONE  # a later generation step: per-position vectors cover the prompt only
    real = attention_mask[:, -chunk:].bool()
    ranks = real.long().cumsum(dim=1) - 1
    vector = vector.to(ranks.device)  # remote: the activations live on the server's device
    rows = vector.shape[0]
    aligned = vector[ranks.clamp(0, rows - 1)]  # [B, T, D]
    covered = (real & (ranks < rows)).unsqueeze(-1)
    combined = covered if isinstance(mask, str) else (covered & mask)
    return aligned, combined


def _apply(value: torch.Tensor, op: PlanOp, mask: torch.Tensor | str, aligned: Any) -> torch.Tensor:
    if op.columns is None:
        new = transform(value, op, aligned)
        return new if isinstance(mask, str) else torch.where(mask, new, value)
    selected = value[..., op.columns]
    new = transform(selected, op, aligned)
    if not isinstance(mask, str):
        new = torch.where(mask, new, selected)
    out = value.clone()
    out[..., op.columns] = new
    return out


def _needs_context(op: PlanOp) -> bool:
    """Whether an op needs to know which tokens this pass holds (`all` with a plain vector
    acts on every row as it comes, whatever the layout: [B, T, D] or vLLM's flat [T, D])."""
    return (
        op.positions != ALL_POSITIONS
        or (op.vector is not None and op.vector.dim() == 2)
        or op.gate is not None
        or op.site == "experts"  # the experts module sees B x T tokens flattened: T is needed
    )


def _is_residual_pair(current: tuple[Any, ...], op: PlanOp) -> bool:
    return (
        op.site == "resid_post"
        and len(current) == 2
        and all(isinstance(part, torch.Tensor) for part in current)
        and current[0].shape == current[1].shape
    )


Station = tuple[list[ConditionRead], list[PlanOp]]  # what happens at one module port


def _stations(plan: Plan) -> dict[tuple[str, Port], Station]:
    """Condition reads and ops per (module, port), in forward order; reads come first at a
    port, so a condition sees the activation before any op there changes it."""
    events: list[tuple[int, int, ConditionRead | PlanOp]] = [
        (read.order, 0, read) for read in plan.reads()
    ]
    events += [(op.order[0], 1, op) for op in plan.ops]
    stations: dict[tuple[str, Port], Station] = {}
    for _, _, item in sorted(events, key=lambda e: (e[0], e[1])):
        reads, ops = stations.setdefault((item.path, item.port), ([], []))
        if isinstance(item, ConditionRead):
            reads.append(item)
        else:
            ops.append(item)
    return stations


def _row_mask(op: PlanOp, mask: torch.Tensor | str, record: dict[Any, Any]) -> torch.Tensor | str:
    """The position mask narrowed to the rows the op acts on (merged plans, `when:` gates)."""
    rows = op.rows
    if op.gate is not None:
        fired = gate_rows(op.gate, record)
        rows = fired if rows is None else (rows & fired)
    if rows is None:
        return mask
    return rows if isinstance(mask, str) else (mask & rows)


def apply_plan(
    root: Any,
    plan: Plan,
    *,
    residual_pairs: bool = False,
    text_masks: TextMasks | None = None,
    record: dict[Any, Any] | None = None,
) -> None:
    """Apply the plan at the current forward pass.

    text_masks: this batch's token masks of role and marker positions (execute/positions.py).

    residual_pairs: the model's decoder blocks return (hidden, residual) whose *sum* is the
    residual stream (vLLM's fused add-norm layers); resid_post ops then act on that sum, and
    the result is written back into the first part so the sum is what the op computed.
    record: where condition scores and gates are kept (execute/gates.py); the same dict must be
    passed on every step of one generation, so later steps hold the gates of step 0.
    """
    if not plan.ops:
        return
    record = {} if record is None else record
    context = batch_layout(root) if any(_needs_context(op) for op in plan.ops) else None
    masks: dict[PositionSelector, torch.Tensor | str] = {}
    for (path, port), (reads, ops) in _stations(plan).items():
        step0 = context is not None and context[0] == context[1].shape[1]
        active: list[tuple[PlanOp, torch.Tensor | str, Any]] = []
        for op in ops:
            if context is None or not _needs_context(op):
                active.append((op, _row_mask(op, ALL, record), None))
                continue
            chunk, attention_mask = context
            if op.positions not in masks:
                text_mask = None
                if text_masks and isinstance(op.positions, TextPositions):
                    text_mask = text_masks.get(op.positions)
                masks[op.positions] = position_mask(op.positions, attention_mask, chunk, text_mask)
            aligned, mask = _per_position(op, masks[op.positions], attention_mask, chunk)
            if mask is not NONE:
                active.append((op, mask, aligned))
        if not active and not (reads and step0):
            continue
        envoy = envoy_at(root, path)
        if active and active[0][0].site == "experts":  # its own station: input, then output
            assert context is not None  # _needs_context
            masked = [(op, _row_mask(op, mask, record), aligned) for op, mask, aligned in active]
            apply_experts(envoy, masked, context[0])
            continue
        current = envoy.input if port == "input" else envoy.output
        is_tuple = isinstance(current, tuple)
        paired = bool(active) and residual_pairs and is_tuple
        paired = paired and _is_residual_pair(current, active[0][0])
        value = current[0] + current[1] if paired else (current[0] if is_tuple else current)
        if step0 and context is not None:
            for read in reads:
                record[("score", id(read))] = score_read(value, read, context[1])
        if not active:
            continue
        for op, mask, aligned in active:
            value = _apply(value, op, _row_mask(op, mask, record), aligned)
        if paired:
            value = value - current[1]  # hidden' + residual == the transformed stream
        new = (value, *current[1:]) if is_tuple else value
        if port == "input":
            envoy.input = new
        else:
            envoy.output = new
