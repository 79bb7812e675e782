"""Baseline and steered passes on the vLLM backend (nnsight.modeling.vllm.VLLM).

Each prompt is its own request, hence its own invoke with its own sampling settings. Under
`tracer.iter` every decoding step applies the plan (the residual stream of a fused add-norm
model is hidden + residual: `residual_pairs`), then reads that step's logits and sampled token.
A name saved in several invokes comes back as one list per request, in submission order
(nnsight's vLLM collect). Trace mode is one step: max_tokens 1.

Written against nnsight 0.8.1's documented VLLM API; not yet run on a GPU by this project
(see README, Backends).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import nnsight
import torch

from recipe_engine.execute.reduce import FINITE_ONLY, StepReduction, reduce_step
from recipe_engine.execute.runner import PassResult
from recipe_engine.execute.steer import apply_plan
from recipe_engine.format.run_spec import GenerationSpec
from recipe_engine.plan import Plan
from recipe_engine.resolve.backends.vllm import sampling_params
from recipe_engine.resolve.loaded_model import LoadedModel

__all__ = ["vllm_pass"]


def _per_request(value: Any, count: int) -> list[Any]:
    """One entry per request: a single request's save comes back bare, several as a list."""
    return [value] if count == 1 else list(value)


def vllm_pass(
    model: LoadedModel,
    plan: Plan,
    prompts: Sequence[str],
    gen: GenerationSpec,
    *,
    trace_only: bool,
    progress: Callable[[int], None] | None = None,
    reduction: StepReduction = FINITE_ONLY,
) -> PassResult:
    nn = model.nn
    with model.lock, nn.trace() as tracer:
        for index, prompt in enumerate(prompts):
            with tracer.invoke(prompt, **sampling_params(gen, index, trace_only)):
                steps = nnsight.save([])
                tokens = nnsight.save([])
                for _ in tracer.iter[:]:
                    apply_plan(nn, plan, residual_pairs=True)
                    steps.append(nn.logits.save())
                    tokens.append(nn.samples.save())
    eos = model.tokenizer.eos_token_id
    result = PassResult(torch.empty(0))
    firsts: list[torch.Tensor] = []
    for logits, sampled in zip(
        _per_request(steps, len(prompts)), _per_request(tokens, len(prompts)), strict=True
    ):
        rows = torch.stack([step.reshape(-1).float().cpu() for step in logits])  # [n_steps, V]
        ids = [int(t.reshape(-1)[0]) for t in sampled]
        end = ids.index(eos) + 1 if eos is not None and eos in ids else len(ids)
        firsts.append(rows[0])
        if not trace_only:
            # vLLM hands each step's logits over per request: reduced here as a generate pass
            # reduces them in its trace (execute/reduce.py)
            stats, _ = reduce_step(rows[:end], reduction, 1)
            result.generated.append([t for t in ids[:end] if t != eos])
            result.step_finite.append(bool(stats[:, 0].all()))
            for column, token_set in enumerate(reduction.token_sets, start=1):
                result.step_mass.setdefault(token_set, []).append(stats[:, column].contiguous())
            if reduction.keep_logits:
                result.step_logits.append(rows[:end])
    if progress:
        progress(len(prompts))
    result.next_logits = torch.stack(firsts)
    return result
