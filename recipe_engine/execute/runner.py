"""Run prompts through the model with a Plan applied: trace, generate or edit mode.

One function per mode, all returning a PassResult. Each holds the model's lock for the whole
pass (nnsight is not thread-safe) and runs under `torch.inference_mode()` (nnsight does not
turn autograd off by itself).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import nnsight
import torch

from recipe_engine.errors import UsageError
from recipe_engine.execute.gates import GateOutcome, gate_outcomes
from recipe_engine.execute.logprobs import StepLogprobs, TokenLogprob
from recipe_engine.execute.pausing import (
    PauseCheck,
    Paused,
    Prompts,
    goes_on,
    grown,
    pausable,
    pausable_call,
)
from recipe_engine.execute.positions import TextMasks, text_masks
from recipe_engine.execute.reduce import FINITE_ONLY, StepReduction, TokenSet, reduce_step
from recipe_engine.execute.rows import merge_row_plans
from recipe_engine.execute.steer import apply_plan
from recipe_engine.execute.step_tap import StepTap, tap_kwargs
from recipe_engine.format.run_spec import GenerationSpec
from recipe_engine.plan import Plan
from recipe_engine.resolve.loaded_model import LoadedModel

__all__ = ["PassResult", "RowPlans", "generate_pass", "score_texts", "trace_pass"]


@dataclass
class PassResult:
    next_logits: torch.Tensor  # [N, V] float32: the next-token logits after each prompt
    generated: list[list[int]] = field(default_factory=list)  # new token ids per prompt
    # per prompt, over its new tokens (cut at EOS); execute/reduce.py says why no more is kept
    step_finite: list[bool] = field(default_factory=list)  # every step's logits finite
    step_mass: dict[TokenSet, list[torch.Tensor]] = field(default_factory=dict)  # set -> [n_new]
    step_logits: list[torch.Tensor] = field(default_factory=list)  # [n_new, V]: on request only
    # per prompt: the conditional interventions of its plan, fired or not, and their scores
    gates: list[list[GateOutcome]] = field(default_factory=list)
    # per prompt, on request: each new token's log-probability and top k (EOS included)
    logprobs: list[list[TokenLogprob]] = field(default_factory=list)
    # set: the call paused between two steps (`pause`); `generate_pass(resume=...)` goes on
    paused: Paused | None = None


# nnsight warns that an open `tracer.iter[:]` loop was "never reached" past the last step: that
# is how the loop ends by design. Installed once at import: `warnings.catch_warnings()` per call
# is not thread-safe and would leak filters between concurrent runs.
warnings.filterwarnings("ignore", message=r".*was never reached.*")

# Seeded sampling seeds torch's process-global RNG; two seeded generations at once (on two
# different models, each under its own lock) would draw from one shared stream.
_SAMPLING_LOCK = threading.RLock()


@contextmanager
def _sampling(gen: GenerationSpec) -> Iterator[None]:
    if gen.do_sample:
        with _SAMPLING_LOCK:
            yield
    else:
        yield


_Item = TypeVar("_Item")


def _batches(prompts: Sequence[_Item], size: int) -> list[list[_Item]]:
    return [list(prompts[i : i + size]) for i in range(0, len(prompts), size)]


def _masks(model: LoadedModel, plan: Plan, batch: list[str]) -> TextMasks | None:
    """The batch's role and marker masks (under the model's lock: the tokenizer is shared)."""
    selectors = plan.text_positions()
    return text_masks(selectors, batch, model.tokenizer) if selectors else None


# One plan for every prompt, or one plan per prompt (prompt groups; a server's profiles).
RowPlans = Plan | Sequence[Plan]


def _batch_plans(plan: RowPlans, prompts: Prompts, size: int) -> list[Plan]:
    """The plan of each batch: the run's plan, or its rows' plans merged (execute/rows.py)."""
    if isinstance(plan, Plan):
        return [plan] * len(range(0, len(prompts), size))
    if len(plan) != len(prompts):
        raise ValueError(f"{len(plan)} row plans for {len(prompts)} prompts")
    return [merge_row_plans(plan[i : i + size]) for i in range(0, len(prompts), size)]


def trace_pass(
    model: LoadedModel,
    plan: RowPlans,
    prompts: Sequence[str],
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> PassResult:
    # Logits are read from the model's own output, not the unembedding module: families such as
    # Gemma 2 post-process them (final logit soft-capping) after lm_head.
    rows: list[torch.Tensor] = []
    gates: list[list[GateOutcome]] = []
    nn = model.nn  # trace bodies name only shippable values (see LoadedModel.remote)
    plans = _batch_plans(plan, prompts, batch_size)
    with model.lock, torch.inference_mode():
        for batch, active in zip(_batches(prompts, batch_size), plans, strict=True):
            masks = _masks(model, active, batch)
            with nn.trace(batch, **model.backend_kwargs):
                record = nnsight.save({})
                apply_plan(nn, active, text_masks=masks, record=record)
                logits = nn.output.logits[:, -1, :].save()
            rows.append(logits.float().cpu())
            gates.extend(gate_outcomes(active, record, len(batch)))
            if progress:
                progress(len(batch))
    return PassResult(torch.cat(rows), gates=gates)


def _generation_kwargs(model: LoadedModel, gen: GenerationSpec) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "max_new_tokens": gen.max_new_tokens,
        "do_sample": gen.do_sample,
        "pad_token_id": model.tokenizer.pad_token_id,
    }
    if gen.min_new_tokens is not None:
        kwargs["min_new_tokens"] = gen.min_new_tokens
    if gen.repetition_penalty is not None:
        kwargs["repetition_penalty"] = gen.repetition_penalty
    if gen.do_sample:
        for name in ("temperature", "top_k", "top_p"):
            if getattr(gen, name) is not None:
                kwargs[name] = getattr(gen, name)
    else:
        # Greedy: neutralize sampling defaults a model's generation_config may carry.
        kwargs.update(temperature=None, top_k=None, top_p=None)
    return kwargs


def _split_generated(
    result: PassResult,
    ids: torch.Tensor,
    eos: int | None,
    reduction: StepReduction,
    steps: list[tuple[torch.Tensor, torch.Tensor | None]],
) -> None:
    """Append a batch's new tokens per row, cut at the first EOS (rows that finished early are
    padded), and each row's reductions over the same steps. One host copy of the stacked
    per-step reductions (and of the full logits only when they were asked for)."""
    new = ids[:, ids.shape[1] - len(steps) :].tolist()
    stats = torch.stack([s for s, _ in steps], dim=1).cpu() if steps else None  # [B, n, 1+S]
    full = None
    if steps and reduction.keep_logits:
        full = torch.stack([k for _, k in steps if k is not None], dim=1).float().cpu()
    for row, seq in enumerate(new):
        end = len(seq)
        if eos is not None and eos in seq:
            end = seq.index(eos) + 1
        result.generated.append([t for t in seq[:end] if t != eos])
        if stats is None:
            continue
        result.step_finite.append(bool(stats[row, :end, 0].all()))
        for column, token_set in enumerate(reduction.token_sets, start=1):
            mass = stats[row, :end, column].contiguous()
            result.step_mass.setdefault(token_set, []).append(mass)
        if full is not None:
            result.step_logits.append(full[row, :end])


def _cut_at_eos(entries: list[TokenLogprob], eos: int | None) -> list[TokenLogprob]:
    """A row's entries up to and including its EOS (what an OpenAI server reports)."""
    for index, entry in enumerate(entries):
        if entry.token == eos:
            return entries[: index + 1]
    return entries


def _keep_batch(
    result: PassResult,
    ids: torch.Tensor,
    steps: list[Any],
    how: tuple[int | None, StepReduction, StepLogprobs | None],
) -> None:
    """One batch's generated rows and, when asked, their log-probabilities, into `result`."""
    eos, reduction, scores = how
    _split_generated(result, ids, eos, reduction, steps)
    if scores is not None:
        new = ids[:, ids.shape[1] - len(steps) :].tolist()
        result.logprobs.extend(_cut_at_eos(r, eos) for r in scores.rows(new))


def _installs(model: LoadedModel, plan: RowPlans, plans: list[Plan]) -> bool:
    """Whether a persistent pass installs its plan as an edit (see above generate_pass)."""
    text_positions = any(batch_plan.text_positions() for batch_plan in plans)
    return (
        model.persistent_edits and not text_positions and isinstance(plan, Plan) and bool(plan.ops)
    )


def _first_logits(steps: list[Any]) -> torch.Tensor:
    first = steps[0][1]
    assert first is not None  # reduce_step keeps step 0's logits
    return cast(torch.Tensor, first).float().cpu()


# persistent=False: the plan is part of each generate trace.
# persistent=True (edit mode): the plan is installed once as an in-place nnsight edit
# (`model.edit(inplace=True)`, looping over every step), every batch is generated through the
# edited model with no per-call interventions, and the edit is cleared in `finally`, so the model
# is clean afterwards even if generation fails. On a remote backend, which keeps no state between
# requests, and for role or marker positions, whose token masks differ from batch to batch, the
# plan goes into every call instead: the same computation.
#
# Each step's logits are reduced inside the trace, on the model's device (execute/reduce.py):
# `reduction` names what the report needs; the first step's logits are kept whole (the
# next-token logits); everything is copied to the host once per batch.
#
# on_step (optional) hears each step: one new token id per row of the running batch, in row
# order (a finished row gets the pad id); stop (asked after each step, only with on_step)
# ends the batch early when it says so. Neither is called on a remote backend. logprobs=k
# (local backend only) keeps each new token's log-probability and the top k of its step
# (execute/logprobs.py), on the device until the batch ends.
#
# pause (asked after each step, when the call can pause: execute/pausing.py `pausable`) ends
# the call early with `result.paused` set; `generate_pass(..., resume=result.paused)` with the
# same model, plan, prompts and settings goes on, and its result is the whole call's.
def generate_pass(
    model: LoadedModel,
    plan: RowPlans,
    prompts: Prompts,
    gen: GenerationSpec,
    batch_size: int,
    *,
    persistent: bool = False,
    progress: Callable[[int], None] | None = None,
    reduction: StepReduction = FINITE_ONLY,
    on_step: Callable[[list[int]], None] | None = None,
    stop: Callable[[], bool] | None = None,
    logprobs: int | None = None,
    pause: Callable[[], bool] | None = None,
    resume: Paused | None = None,
) -> PassResult:
    """Generate with the plan applied on every step. `prompts`: texts, or token ids. What
    on_step, stop, logprobs, pause and resume do: the comment above this function."""
    if logprobs is not None and model.remote:
        raise UsageError("log-probabilities of generated tokens need the local backend")
    kwargs = _generation_kwargs(model, gen)
    nn = model.nn
    plans = _batch_plans(plan, prompts, batch_size)  # merged per batch: one plan each
    installed = persistent and _installs(model, plan, plans)
    eos = model.tokenizer.eos_token_id
    result = PassResult(torch.empty(0))
    firsts: list[torch.Tensor] = []
    batches = _batches(prompts, batch_size)
    ask = pause if pause is not None and pausable(model, gen, installed, len(batches)) else None
    if resume is not None and (len(batches) != 1 or installed or model.remote):
        raise ValueError("only a one-batch local call without edits can be resumed")
    with _sampling(gen), model.lock, torch.inference_mode():
        if installed:
            with nn.edit(inplace=True) as tracer:
                for _ in tracer.iter[:]:
                    apply_plan(nn, plans[0])
        try:
            for batch, batch_plan in zip(batches, plans, strict=True):
                active = Plan() if installed else batch_plan
                start = _batch_start(model, active, batch, gen, kwargs, logprobs, ask, resume)
                call, given, masks, scores = start.call, start.given, start.masks, start.scores
                carried_steps, carried_record, holder = start.steps, start.record, start.holder
                # A remote backend runs the call elsewhere: nothing comes back before its end.
                tap = {} if model.remote else tap_kwargs(on_step, stop, scores, holder)
                # Inline, not in a helper: an open `iter[:]` loop ends the invoke, so nothing
                # after it (a helper's `return`) would ever run. No comment lines inside the
                # invoke: the remote round trip re-reads its source and loses track on them.
                with nn.generate(**call, **tap, **model.backend_kwargs) as tracer:
                    with tracer.invoke(given):
                        steps = nnsight.save(carried_steps)
                        record = nnsight.save(carried_record)
                        for _ in tracer.iter[:]:
                            apply_plan(nn, active, text_masks=masks, record=record)
                            logits = nn.output.logits[:, -1, :]
                            steps.append(nnsight.save(reduce_step(logits, reduction, len(steps))))
                            if scores is not None:
                                scores.remember(logits)
                    with tracer.invoke():
                        ids = tracer.result.save()
                firsts.append(_first_logits(steps))
                paused = isinstance(tap.get("streamer"), StepTap) and tap["streamer"].paused
                if holder is not None and paused and goes_on(ids, len(steps), gen, eos):
                    inputs = grown(ids, holder.mask)
                    result.paused = Paused(inputs, start.cache, steps, record, scores, len(steps))
                    result.next_logits = firsts[0]
                    return result
                _keep_batch(result, ids, steps, (eos, reduction, scores))
                result.gates.extend(gate_outcomes(active, record, len(batch)))
                if progress:
                    progress(len(batch))
        finally:
            if installed:
                nn.clear_edits()
    result.next_logits = torch.cat(firsts)
    return result


@dataclass
class _BatchStart:
    """What one batch's generate call starts from: fresh, or where a paused call stopped."""

    call: dict[str, Any]  # generate's keyword arguments
    given: Any  # the invoke's input: prompts, or a paused call's grown ids and mask
    masks: TextMasks | None  # role/marker masks (fresh only: later steps hold 1 token a row)
    scores: StepLogprobs | None
    steps: list[Any]  # the reduced steps so far
    record: dict[Any, Any]  # the gates' record so far
    holder: PauseCheck | None  # asks `pause` between two steps (a pausable call only)
    cache: Any  # the KV cache a pausable call keeps


def _batch_start(
    model: LoadedModel,
    active: Plan,
    batch: Any,
    gen: GenerationSpec,
    kwargs: dict[str, Any],
    logprobs: int | None,
    pause: Callable[[], bool] | None,
    resume: Paused | None,
) -> _BatchStart:
    call, holder, cache = pausable_call(model, batch, kwargs, pause, resume)
    if resume is not None:
        return _BatchStart(
            call, resume.inputs, None, resume.scores, resume.steps, resume.record, holder, cache
        )
    if gen.seed is not None:
        torch.manual_seed(gen.seed)
    masks = _masks(model, active, cast(list[str], batch))  # texts if any
    scores = None if logprobs is None else StepLogprobs(logprobs)
    return _BatchStart(call, batch, masks, scores, [], {}, holder, cache)


def text_logits(
    model: LoadedModel, plan: Plan, texts: Sequence[str], batch_size: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per text: (token ids [T], logits [T, V]) over its real tokens, the plan applied."""
    out: list[tuple[torch.Tensor, torch.Tensor]] = []
    nn = model.nn
    with model.lock, torch.inference_mode():
        for batch in _batches(texts, batch_size):
            encoded = model.tokenizer(batch, return_tensors="pt", padding=True)
            masks = _masks(model, plan, batch)
            with nn.trace(batch, **model.backend_kwargs):
                apply_plan(nn, plan, text_masks=masks)
                logits = nn.output.logits.save()
            logits = logits.float().cpu()
            for row in range(len(batch)):
                real = encoded["attention_mask"][row].bool()
                out.append((encoded["input_ids"][row][real], logits[row][real]))
    return out


def score_texts(
    model: LoadedModel, plan: Plan, texts: Sequence[str], batch_size: int
) -> list[float]:
    """Mean negative log-likelihood per predicted token of each text under the model."""
    nll: list[float] = []
    for ids, logits in text_logits(model, plan, texts, batch_size):
        if len(ids) < 2:
            nll.append(float("nan"))
            continue
        logprobs = torch.log_softmax(logits[:-1], dim=-1)
        nll.append(float(-logprobs.gather(-1, ids[1:].unsqueeze(-1)).mean()))
    return nll
