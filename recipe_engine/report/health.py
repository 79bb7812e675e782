"""Is the steered model still computing numbers, and still modelling language?

Checked after every run, on what the run already computed (no extra forward pass):

- **NaN/Inf** in any steered logits, or a sampler refusing them, is a failure (`NumericalFailure`,
  exit 3) with one line naming the intervention with the largest magnitude (|strength| x |v|),
  the usual culprit. A NaN never reaches the report as if it were a measurement.
- **Finite but broken** is a warning, by two documented rules:
  * side-effect KL on neutral text (`kl_baseline` with `text:`) above GARBAGE_TEXT_KL nats per
    position: a well-behaved steering vector costs well under 1 (the embedded demo: 0.07);
  * perplexity of neutral text above GARBAGE_PERPLEXITY_RATIO x the baseline's;
  * KL on the prompts' next token above GARBAGE_PROMPT_KL_FRACTION x log(vocabulary size): that
    is most of the way to a distribution unrelated to the baseline's (the intended effect of a
    strong ablation is well below: head ablation on the embedded model, 3.7 of 7.2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from recipe_engine.errors import NumericalFailure
from recipe_engine.plan import Plan, PlanOp
from recipe_engine.report.metrics import MetricValue

__all__ = [
    "GARBAGE_PERPLEXITY_RATIO",
    "GARBAGE_PROMPT_KL_FRACTION",
    "GARBAGE_TEXT_KL",
    "garbage_warnings",
    "is_non_finite_error",
    "require_finite",
]

GARBAGE_TEXT_KL = 5.0
GARBAGE_PERPLEXITY_RATIO = 10.0
GARBAGE_PROMPT_KL_FRACTION = 0.75

# Float16 overflows at 65504: a model run in half precision fails at magnitudes float32 takes.
_FLOAT16_MAX = 65504.0


def _magnitude(op: PlanOp) -> float:
    norm = float(op.vector.float().norm()) if op.vector is not None else 1.0
    return abs(op.strength) * norm


def _name(op: PlanOp) -> str:
    where = f"layer {op.layer} {op.site}" if op.layer is not None else op.path
    vector = f" {op.vector_name!r}" if op.vector_name else ""
    return f"intervention {op.index} ({op.op}{vector} at {where})"


def likely_cause(plan: Plan, dtype: torch.dtype | None = None) -> str:
    """One clause naming the op most likely to have blown the activations up."""
    if not plan.ops:
        hint = "; try `model.dtype: float32`" if dtype in (torch.float16, torch.bfloat16) else ""
        return f"the model itself produces them, with no intervention{hint}"
    op = max(plan.ops, key=_magnitude)
    size = _magnitude(op)
    scale = f"strength {op.strength:g}"
    if op.vector is not None:
        scale += f" x |v| {float(op.vector.float().norm()):.3g} = {size:.3g}"
    overflow = ""
    if dtype == torch.float16 and size > _FLOAT16_MAX:
        overflow = f", past float16's largest number ({_FLOAT16_MAX:g})"
    return (
        f"{_name(op)} has {scale}{overflow}: lower the strength (`steer sweep` finds a usable "
        "range) or normalize the vector"
    )


def require_finite(
    logits: torch.Tensor | Sequence[torch.Tensor],
    where: str,
    plan: Plan,
    dtype: torch.dtype | None = None,
) -> None:
    """Raise NumericalFailure if any of the logits is NaN or Inf."""
    tensors = [logits] if isinstance(logits, torch.Tensor) else list(logits)
    bad = sum(int(not bool(torch.isfinite(t).all())) for t in tensors)
    if bad:
        count = f"{bad} of {len(tensors)} " if len(tensors) > 1 else ""
        raise NumericalFailure(
            f"the {'steered' if plan.ops else 'unsteered'} model produced NaN/Inf logits "
            f"({count}{where}): {likely_cause(plan, dtype)}"
        )


def is_non_finite_error(exc: BaseException) -> bool:
    """A sampler's refusal of NaN/Inf probabilities (torch.multinomial's message)."""
    text = str(exc).lower()
    return "inf" in text and "nan" in text


def garbage_warnings(metrics: list[MetricValue], plan: Plan, vocab_size: int) -> list[str]:
    """Warnings for a steered model whose numbers are finite but no longer model language."""
    if not plan.ops:
        return []
    found: list[str] = []
    for metric in metrics:
        value = metric.steered
        if not math.isfinite(value):
            continue
        if metric.name == "kl_baseline:text" and value > GARBAGE_TEXT_KL:
            found.append(
                f"side-effect KL on neutral text is {value:.3g} nats/position (> "
                f"{GARBAGE_TEXT_KL:g}): the steered model no longer models ordinary text"
            )
        elif metric.name == "kl_baseline":
            bound = GARBAGE_PROMPT_KL_FRACTION * math.log(max(vocab_size, 2))
            if value > bound:
                found.append(
                    f"KL on the prompts' next token is {value:.3g} nats (> {bound:.3g}, "
                    f"{GARBAGE_PROMPT_KL_FRACTION:g} x log of the vocabulary): the output is "
                    "unrelated to the unsteered model's"
                )
        elif (
            metric.name == "perplexity"
            and metric.baseline
            and math.isfinite(metric.baseline)
            and value > GARBAGE_PERPLEXITY_RATIO * metric.baseline
        ):
            found.append(
                f"perplexity of neutral text rose {value / metric.baseline:.3g}x (> "
                f"{GARBAGE_PERPLEXITY_RATIO:g}x): the steered model no longer models text"
            )
    if found:
        op = max(plan.ops, key=_magnitude)
        found = [f"{text}; likely cause: {_name(op)}, strength {op.strength:g}" for text in found]
    return found
