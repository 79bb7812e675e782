"""NaN/Inf in a pass is a failure, never a measurement.

NaN/Inf in any logits a pass computed, or a sampler refusing them, raises `NumericalFailure`
(exit 3) with one line naming the intervention with the largest magnitude (|strength| x |v|),
the usual culprit. Checked as each pass runs (execute/passes.py); report/health.py warns about
output that is finite but broken.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from recipe_engine.errors import NumericalFailure
from recipe_engine.plan import Plan, PlanOp

__all__ = ["is_non_finite_error", "largest_op", "likely_cause", "op_name", "require_finite"]

# Float16 overflows at 65504: a model run in half precision fails at magnitudes float32 takes.
_FLOAT16_MAX = 65504.0


def _magnitude(op: PlanOp) -> float:
    norm = float(op.vector.float().norm()) if op.vector is not None else 1.0
    return abs(op.strength) * norm


def op_name(op: PlanOp) -> str:
    where = f"layer {op.layer} {op.site}" if op.layer is not None else op.path
    vector = f" {op.vector_name!r}" if op.vector_name else ""
    return f"intervention {op.index} ({op.op}{vector} at {where})"


def largest_op(plan: Plan) -> PlanOp:
    """The op of largest magnitude (|strength| x |v|): the usual culprit of a blow-up."""
    return max(plan.ops, key=_magnitude)


def likely_cause(plan: Plan, dtype: torch.dtype | None = None) -> str:
    """One clause naming the op most likely to have blown the activations up."""
    if not plan.ops:
        hint = "; try `model.dtype: float32`" if dtype in (torch.float16, torch.bfloat16) else ""
        return f"the model itself produces them, with no intervention{hint}"
    op = largest_op(plan)
    size = _magnitude(op)
    scale = f"strength {op.strength:g}"
    if op.vector is not None:
        scale += f" x |v| {float(op.vector.float().norm()):.3g} = {size:.3g}"
    overflow = ""
    if dtype == torch.float16 and size > _FLOAT16_MAX:
        overflow = f", past float16's largest number ({_FLOAT16_MAX:g})"
    return (
        f"{op_name(op)} has {scale}{overflow}: lower the strength (`steer sweep` finds a usable "
        "range) or normalize the vector"
    )


def require_finite(
    logits: torch.Tensor | Sequence[torch.Tensor] | Sequence[bool],
    where: str,
    plan: Plan,
    dtype: torch.dtype | None = None,
) -> None:
    """Raise NumericalFailure if any of the logits is NaN or Inf. A sequence of bools is one
    flag per tensor already checked (on the device, by execute/reduce.py): True = finite."""
    items: list[torch.Tensor | bool] = (
        [logits] if isinstance(logits, torch.Tensor) else list(logits)
    )
    finite = [t if isinstance(t, bool) else bool(torch.isfinite(t).all()) for t in items]
    bad = sum(int(not ok) for ok in finite)
    if bad:
        count = f"{bad} of {len(finite)} " if len(finite) > 1 else ""
        raise NumericalFailure(
            f"the {'steered' if plan.ops else 'unsteered'} model produced NaN/Inf logits "
            f"({count}{where}): {likely_cause(plan, dtype)}"
        )


def is_non_finite_error(exc: BaseException) -> bool:
    """A sampler's refusal of NaN/Inf probabilities (torch.multinomial's message)."""
    text = str(exc).lower()
    return "inf" in text and "nan" in text
