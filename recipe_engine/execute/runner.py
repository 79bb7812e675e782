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
from typing import Any

import nnsight
import torch

from recipe_engine.execute.steer import apply_plan
from recipe_engine.format.run_spec import GenerationSpec
from recipe_engine.plan import Plan
from recipe_engine.resolve.loaded_model import LoadedModel

__all__ = ["PassResult", "generate_pass", "score_texts", "trace_pass"]


@dataclass
class PassResult:
    next_logits: torch.Tensor  # [N, V] float32: the next-token logits after each prompt
    generated: list[list[int]] = field(default_factory=list)  # new token ids per prompt
    step_logits: list[torch.Tensor] = field(default_factory=list)  # [n_new, V] per prompt


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


def _batches(prompts: Sequence[str], size: int) -> list[list[str]]:
    return [list(prompts[i : i + size]) for i in range(0, len(prompts), size)]


def trace_pass(
    model: LoadedModel,
    plan: Plan,
    prompts: Sequence[str],
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> PassResult:
    # Logits are read from the model's own output, not the unembedding module: families such as
    # Gemma 2 post-process them (final logit soft-capping) after lm_head.
    rows: list[torch.Tensor] = []
    nn = model.nn  # trace bodies name only shippable values (see LoadedModel.remote)
    with model.lock, torch.inference_mode():
        for batch in _batches(prompts, batch_size):
            with nn.trace(batch, **model.backend_kwargs):
                apply_plan(nn, plan)
                logits = nn.output.logits[:, -1, :].save()
            rows.append(logits.float().cpu())
            if progress:
                progress(len(batch))
    return PassResult(torch.cat(rows))


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
    ids: torch.Tensor, prompt_width: int, eos: int | None, steps: list[torch.Tensor]
) -> tuple[list[list[int]], list[torch.Tensor]]:
    """New tokens per row, cut at the first EOS (rows that finished early are padded)."""
    new = ids[:, prompt_width:].tolist()
    stacked = torch.stack(steps, dim=1) if steps else None  # [B, n_steps, V]
    tokens: list[list[int]] = []
    logits: list[torch.Tensor] = []
    for row, seq in enumerate(new):
        end = len(seq)
        if eos is not None and eos in seq:
            end = seq.index(eos) + 1
        tokens.append([t for t in seq[:end] if t != eos])
        if stacked is not None:
            logits.append(stacked[row, :end])
    return tokens, logits


def generate_pass(
    model: LoadedModel,
    plan: Plan,
    prompts: Sequence[str],
    gen: GenerationSpec,
    batch_size: int,
    *,
    persistent: bool = False,
    progress: Callable[[int], None] | None = None,
) -> PassResult:
    """Generate with the plan applied on every step.

    persistent=False: the plan is part of each generate trace.
    persistent=True (edit mode): the plan is installed once as an in-place nnsight edit
    (`model.edit(inplace=True)`, looping over every step), every batch is generated through
    the edited model with no per-call interventions, and the edit is cleared in `finally`, so
    the model is clean afterwards even if generation fails. On a remote backend, which keeps
    no state between requests, the plan goes into every call instead: the same computation.
    """
    kwargs = _generation_kwargs(model, gen)
    nn = model.nn
    persistent = persistent and model.persistent_edits
    eos = model.tokenizer.eos_token_id
    result = PassResult(torch.empty(0))
    firsts: list[torch.Tensor] = []
    with _sampling(gen), model.lock, torch.inference_mode():
        if persistent and plan.ops:
            with nn.edit(inplace=True) as tracer:
                for _ in tracer.iter[:]:
                    apply_plan(nn, plan)
        try:
            for batch in _batches(prompts, batch_size):
                if gen.seed is not None:
                    torch.manual_seed(gen.seed)
                active = Plan() if persistent else plan
                # Inline, not in a helper: an open `iter[:]` loop ends the invoke, so nothing
                # after it (a helper's `return`) would ever run. No comment lines inside the
                # invoke: the remote round trip re-reads its source and loses track on them.
                with nn.generate(**kwargs, **model.backend_kwargs) as tracer:
                    with tracer.invoke(batch):
                        steps = nnsight.save([])
                        for _ in tracer.iter[:]:
                            apply_plan(nn, active)
                            steps.append(nn.output.logits[:, -1, :].save())
                    with tracer.invoke():
                        ids = tracer.result.save()
                width = ids.shape[1] - len(steps)
                tokens, logits = _split_generated(ids, width, eos, [s.float().cpu() for s in steps])
                firsts.append(steps[0].float().cpu())
                result.generated.extend(tokens)
                result.step_logits.extend(logits)
                if progress:
                    progress(len(batch))
        finally:
            if persistent and plan.ops:
                nn.clear_edits()
    result.next_logits = torch.cat(firsts)
    return result


def text_logits(
    model: LoadedModel, plan: Plan, texts: Sequence[str], batch_size: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per text: (token ids [T], logits [T, V]) over its real tokens, the plan applied."""
    out: list[tuple[torch.Tensor, torch.Tensor]] = []
    nn = model.nn
    with model.lock, torch.inference_mode():
        for batch in _batches(texts, batch_size):
            encoded = model.tokenizer(batch, return_tensors="pt", padding=True)
            with nn.trace(batch, **model.backend_kwargs):
                apply_plan(nn, plan)
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
