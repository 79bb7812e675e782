"""Is the steered model still modelling language?

Checked after every run, on what the run already computed (no extra forward pass). NaN/Inf is
caught earlier, as the passes run (execute/numerics.py): a NaN never reaches the report as if
it were a measurement.

- **Finite but broken** is a warning, by these documented rules:
  * side-effect KL on neutral text (`kl_baseline` with `text:`) above GARBAGE_TEXT_KL nats per
    position: a well-behaved steering vector costs well under 1 (the embedded demo: 0.07);
  * perplexity of neutral text above GARBAGE_PERPLEXITY_RATIO x the baseline's;
  * KL on the prompts' next token above GARBAGE_PROMPT_KL_FRACTION x log(vocabulary size): that
    is most of the way to a distribution unrelated to the baseline's (the intended effect of a
    strong ablation is well below: head ablation on the embedded model, 3.7 of 7.2).
"""

from __future__ import annotations

import math

from recipe_engine.execute.numerics import largest_op, op_name
from recipe_engine.plan import Plan
from recipe_engine.report.metrics import MetricValue

__all__ = [
    "GARBAGE_PERPLEXITY_RATIO",
    "GARBAGE_PROMPT_KL_FRACTION",
    "GARBAGE_TEXT_KL",
    "garbage_warnings",
]

GARBAGE_TEXT_KL = 5.0
GARBAGE_PERPLEXITY_RATIO = 10.0
GARBAGE_PROMPT_KL_FRACTION = 0.75


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
        op = largest_op(plan)
        found = [f"{text}; likely cause: {op_name(op)}, strength {op.strength:g}" for text in found]
    return found
