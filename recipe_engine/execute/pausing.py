"""Pausing a generate call between two steps and going on later (serve's scheduler): what a
paused call keeps (`Paused`), when a call may pause, and the inputs and kwargs it goes on
with. Going on is the decode step the call would have run next, under the same KV cache, so
the tokens are those of an uninterrupted call. execute/runner.py `generate_pass` uses these.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from transformers import DynamicCache

from recipe_engine.execute.logprobs import StepLogprobs
from recipe_engine.format.run_spec import GenerationSpec
from recipe_engine.resolve.loaded_model import LoadedModel

__all__ = [
    "PauseCheck",
    "Paused",
    "Prompts",
    "goes_on",
    "grown",
    "pausable",
    "pausable_call",
]

# Prompts as texts, or as token ids (given by a client: used as they are, nothing added).
Prompts = Sequence[str] | Sequence[list[int]]


@dataclass
class Paused:
    """A generate call stopped between two steps so that other work can run (serve's
    scheduler), with all its next call needs to go on where it stopped: the same KV cache,
    the tokens so far, the gates of step 0, the per-step reductions. Going on is the decode
    step the call would have run next (one new token per row under the same cache), so the
    tokens are those of an uninterrupted call."""

    inputs: dict[str, torch.Tensor]  # input_ids (left-padded prompts, the tokens so far), mask
    cache: Any  # transformers' DynamicCache: every token but the last
    steps: list[Any]  # each step's reductions so far (reduce_step)
    record: dict[Any, Any]  # condition scores and gates of step 0 (execute/gates.py)
    scores: StepLogprobs | None  # log-probabilities so far, when asked for
    taken: int  # steps generated so far


class PauseCheck:
    """When a pausable call may pause: `ask` says so (asked after each step), and the prompt
    the call runs is the one whose attention mask it holds (a tokenization that differs
    would resume on the wrong mask: such a call never pauses)."""

    def __init__(self, ask: Callable[[], bool], ids: torch.Tensor, mask: torch.Tensor) -> None:
        self.ask, self.ids, self.mask = ask, ids, mask
        self.usable = True

    def check(self, prompt: torch.Tensor) -> None:
        """The prompt ids the call was given (the streamer's first `put`)."""
        real = self.mask.bool()
        prompt = prompt.reshape(self.ids.shape[0], -1).cpu()
        self.usable = prompt.shape == self.ids.shape and torch.equal(prompt[real], self.ids[real])

    def wanted(self) -> bool:
        return self.usable and self.ask()


def cache_keyword(model: LoadedModel) -> str:
    """What this transformers calls the KV cache argument (`cache` since 5.x, before that
    `past_key_values`)."""
    forward = getattr(model.hf, "forward", None)
    try:
        names = inspect.signature(forward).parameters if forward is not None else {}
    except (TypeError, ValueError):
        names = {}
    return "cache" if "cache" in names else "past_key_values"


def pausable(model: LoadedModel, gen: GenerationSpec, installed: bool, batches: int) -> bool:
    """Whether a call may pause and go on later: one batch, run here, with transformers' own
    dynamic cache. Never a seeded sampled call: the calls run in between would draw from
    torch's random stream, and going on would not reseed it as the call alone would."""
    config = getattr(getattr(model.hf, "generation_config", None), "cache_implementation", None)
    seeded = gen.do_sample and gen.seed is not None
    return not (
        model.remote or installed or batches != 1 or seeded or config not in (None, "dynamic")
    )


def new_cache(model: LoadedModel) -> Any:
    """The KV cache generate would make itself (a dynamic cache for the model's layers), made
    here so that a paused call keeps it."""
    hf: Any = model.hf
    return DynamicCache(config=hf.config.get_text_config(decoder=True))


def prompt_layout(model: LoadedModel, batch: Prompts) -> tuple[torch.Tensor, torch.Tensor]:
    """(input ids, attention mask) of a batch as the trace pads it: on the left (under the
    model's lock: the tokenizer is shared)."""
    if batch and isinstance(batch[0], str):
        encoded = model.tokenizer(list(batch), return_tensors="pt", padding=True)
        return encoded["input_ids"], encoded["attention_mask"]
    rows = cast(Sequence[list[int]], batch)
    width = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row) :] = 1
    return ids, mask


def resumed_kwargs(kwargs: dict[str, Any], taken: int) -> dict[str, Any]:
    """A paused call's generate kwargs for the steps it has left."""
    out = {**kwargs, "max_new_tokens": kwargs["max_new_tokens"] - taken}
    if "min_new_tokens" in out:
        left = out["min_new_tokens"] - taken
        if left > 0:
            out["min_new_tokens"] = left
        else:
            del out["min_new_tokens"]
    return out


def grown(ids: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """A paused call's inputs: its prompts' mask with one column per token generated since."""
    ones = torch.ones(len(mask), ids.shape[1] - mask.shape[1], dtype=mask.dtype)
    return {"input_ids": ids, "attention_mask": torch.cat([mask, ones], dim=1)}


def goes_on(ids: torch.Tensor, taken: int, gen: GenerationSpec, eos: int | None) -> bool:
    """Whether a call that paused after `taken` steps has steps left: not at its token limit,
    and some row not ended at EOS."""
    if taken >= gen.max_new_tokens:
        return False
    if eos is None:
        return True
    return not bool((ids[:, ids.shape[1] - taken :] == eos).any(dim=1).all())


def pausable_call(
    model: LoadedModel,
    batch: Prompts,
    call: dict[str, Any],
    pause: Callable[[], bool] | None,
    resume: Paused | None,
) -> tuple[dict[str, Any], PauseCheck | None, Any]:
    """A batch's generate kwargs with the KV cache it keeps or goes on from, the check that
    asks `pause` (None: the call cannot pause), and that cache."""
    cache = None if resume is None else resume.cache
    holder = None
    if pause is not None:
        if resume is None:
            cache = new_cache(model)
            ids0, mask0 = prompt_layout(model, batch)
        else:
            ids0 = resume.inputs["input_ids"].cpu()
            mask0 = resume.inputs["attention_mask"].cpu()
        holder = PauseCheck(pause, ids0, mask0)
    if resume is not None:
        call = resumed_kwargs(call, resume.taken)
    if cache is not None:
        call = {**call, cache_keyword(model): cache}
    return call, holder, cache
