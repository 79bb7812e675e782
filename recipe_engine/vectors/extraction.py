"""Read activations at a site for many prompts, batched through nnsight.

Prompts are left-padded in batches; the position is resolved per prompt over its real tokens
(`last` is each prompt's own last token, `mean` averages real tokens only, an index counts real
tokens), so padding never enters a vector. `mean` also skips the markers the tokenizer added
itself (a leading `<|endoftext|>` or `<s>`): such a token is the same in every prompt, serves as
an attention sink and has activations unlike any word's, so averaging it in would describe the
marker as much as the text. The reduction runs inside the trace, on the model's device and in
float32 whatever the model's dtype (a bf16 activation is widened before any sum, so means are
float32 sums of the exact bf16 values), so only [batch, width] float32 rows leave it, and the
forward pass stops right after the site is read (the layers above it are never computed). Rows
stay on the device until their window of batches is done: one host copy per window, or none at
all for callers that keep running sums on the device (`to_host=False`). Prompts arrive as an
iterable and are consumed one batch at a time: a prompt file is never held in memory whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

import nnsight
import torch

from recipe_engine.format.positions import AfterMarker, TextPositions, parse_positions
from recipe_engine.resolve.architectures import envoy_at
from recipe_engine.resolve.chat_tokens import MarkerNotFound, text_masks
from recipe_engine.resolve.context import PromptTooLong, learned_positions
from recipe_engine.resolve.loaded_model import LoadedModel

# Batches per length-sorting window: bounds memory (a window of prompts) while letting most
# batches hold prompts of similar length.
WINDOW_BATCHES = 8

# Smallest extraction batch per device type. A trace has a fixed cost (~6 ms of GPU work per
# batch measured on an H200 at width 2048) that small batches cannot amortize on a GPU, while on
# a CPU the matrix products dominate from a few prompts on and larger batches only pad more.
MIN_BATCH = {"cuda": 64, "cpu": 16}

__all__ = [
    "MIN_BATCH",
    "batched",
    "extraction_batch_size",
    "iter_activations",
    "mean_weights",
    "read_activations",
    "reduce_positions",
    "site_location",
]


def site_location(model: LoadedModel, site: str, layer: int, module: str | None) -> tuple[str, str]:
    n = model.shape.n_layers
    layer = layer % n if -n <= layer < n else layer
    if module is not None:
        return module.replace("{layer}", str(layer)), "output"
    location = model.adapter.locate(site, layer)
    return location.path, location.port


def extraction_batch_size(requested: int, device: torch.device) -> int:
    """Prompts per extraction trace: the recipe's `run.batch_size`, raised to MIN_BATCH[device]."""
    return max(requested, MIN_BATCH.get(device.type, MIN_BATCH["cpu"]))


def batched(items: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def reduce_positions(
    value: torch.Tensor, real: torch.Tensor, position: Any, added: torch.Tensor | None = None
) -> torch.Tensor:
    """[B, T, D] -> float32 [B, D] (or [B, T, D] for `all`) over each row's real tokens.

    Padding is on the left. `added` marks tokens the tokenizer inserted (special tokens); `mean`
    leaves them out. A role or marker position arrives as its [B, T] token mask (text_masks),
    and is the mean over those tokens. The result is float32 whatever the activations' dtype:
    rows are widened before they are summed, so a bf16 model's means carry no bf16 rounding.
    """
    if isinstance(position, torch.Tensor):
        weights = position.to(value.device).float()
        weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1.0)
        return (value.float() * weights.unsqueeze(-1)).sum(dim=1)
    if position == "last":
        return value[:, -1, :].float()
    if position == "all":
        return value.float()
    mask = real.to(value.device)
    if position == "mean":
        return (value.float() * mean_weights(mask, added).unsqueeze(-1)).sum(dim=1)
    ranks = mask.long().cumsum(dim=1) - 1
    length = mask.long().sum(dim=1)
    target = position + length if position < 0 else torch.full_like(length, position)
    pick = (ranks == target.unsqueeze(1)) & mask.bool()
    return (value.float() * pick.unsqueeze(-1).float()).sum(dim=1)


def mean_weights(real: torch.Tensor, added: torch.Tensor | None) -> torch.Tensor:
    """[B, T] weights summing to 1 per row over real, non-added tokens.

    A row made only of added tokens keeps them all: an empty mean would be a silent zero.
    """
    keep = real.bool()
    if added is not None:
        words = keep & ~added.to(real.device).bool()
        keep = torch.where(words.any(dim=1, keepdim=True), words, keep)
    weights = keep.float()
    return weights / weights.sum(dim=1, keepdim=True).clamp_min(1.0)


def _check_index(position: Any, real: torch.Tensor, batch: list[str]) -> None:
    if isinstance(position, int) and not isinstance(position, bool):
        lengths = real.sum(dim=1)
        for prompt, length in zip(batch, lengths.tolist(), strict=True):
            if not -length <= position < length:
                raise IndexError(
                    f"position {position} is outside the prompt {prompt[:40]!r} ({length} tokens)"
                )


def iter_activations(
    model: LoadedModel,
    prompts: Iterable[str],
    *,
    layer: int,
    site: str,
    module: str | None,
    position: Any,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
    to_host: bool = True,
) -> Iterator[torch.Tensor]:
    """Yield float32 tensors of reduced activations, in prompt order, one per window.

    With `to_host` each window is copied to the CPU once; without, it stays where the trace left
    it (the model's device locally), for callers that reduce further there.

    Within a window of WINDOW_BATCHES batches, prompts are batched by token length: left
    padding then wastes few columns (measured: padded tokens fall from ~1.45x to ~1.08x of the
    real ones on mixed-length prompts). Rows are put back in prompt order before they leave,
    since paired methods rely on that order.
    """
    path, port = site_location(model, site, layer, module)
    tokenizer = model.tokenizer
    limit = learned_positions(model)
    seen = 0
    for window in batched(prompts, batch_size * WINDOW_BATCHES):
        with model.lock:  # see LoadedModel: the tokenizer is shared
            lengths = [len(ids) for ids in tokenizer(window)["input_ids"]]
        for i, length in enumerate(lengths):
            if limit is not None and length > limit:  # else torch's bare IndexError, mid-trace
                raise PromptTooLong(seen + i, window[i], length, 0, limit)
        seen += len(window)
        order = sorted(range(len(window)), key=lambda i: lengths[i])
        rows: list[torch.Tensor] = []
        for start in range(0, len(order), batch_size):
            batch = [window[i] for i in order[start : start + batch_size]]
            rows.append(_read_batch(model, batch, path, port, position))
            if progress is not None:
                progress(len(batch))
        stacked = torch.cat(rows)
        restored = torch.empty_like(stacked)
        restored[torch.tensor(order, device=stacked.device)] = stacked
        yield restored.cpu() if to_host else restored


def _text_position(model: LoadedModel, batch: list[str], position: Any) -> Any:
    """A role or marker read position -> its [B, T] token mask; any other position as it is."""
    if not (isinstance(position, AfterMarker) or position in ("system", "user", "assistant")):
        return position
    selector = parse_positions(position)
    assert isinstance(selector, TextPositions)
    try:
        with model.lock:  # see LoadedModel: the tokenizer is shared
            mask = text_masks([selector], batch, model.tokenizer)[selector]
    except MarkerNotFound as exc:  # an IndexError is reported at the vector's position
        raise IndexError(
            f"position {selector.written}: the prompt {exc.text[:60]!r} does not contain "
            f"{exc.marker!r}"
        ) from None
    for prompt, count in zip(batch, mask.sum(dim=1).tolist(), strict=True):
        if not count:
            raise IndexError(f"position {selector.written} holds no token of {prompt[:60]!r}")
    return mask


def _read_batch(
    model: LoadedModel, batch: list[str], path: str, port: str, position: Any
) -> torch.Tensor:
    with model.lock:  # see LoadedModel: the tokenizer is shared
        encoded = model.tokenizer(
            batch, return_tensors="pt", padding=True, return_special_tokens_mask=True
        )
    real = encoded["attention_mask"]
    added = encoded.get("special_tokens_mask")
    _check_index(position, real, batch)
    position = _text_position(model, batch, position)
    nn = model.nn  # trace bodies name only shippable values (see LoadedModel.remote)
    with model.lock, torch.inference_mode(), nn.trace(batch, **model.backend_kwargs) as tracer:
        envoy = envoy_at(nn, path)
        value = envoy.input if port == "input" else envoy.output
        if isinstance(value, tuple):
            value = value[0]
        reduced = nnsight.save(reduce_positions(value, real, position, added))
        tracer.stop()  # nothing above the site is needed
    return reduced.detach()  # float32, still on the device: no host copy per batch


def read_activations(model: LoadedModel, prompts: Iterable[str], **kwargs: Any) -> torch.Tensor:
    """All reduced activations stacked: [n_prompts, width] (or [n, T, width] for `all`)."""
    rows = list(iter_activations(model, prompts, **kwargs))
    if not rows:
        raise ValueError("no prompts to read activations from")
    return torch.cat(rows, dim=0)
