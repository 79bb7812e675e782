"""Read activations at a site for many prompts, batched through nnsight.

Prompts are left-padded in batches; the position is resolved per prompt over its real tokens
(`last` is each prompt's own last token, `mean` averages real tokens only, an index counts real
tokens), so padding never enters a vector. Only the reduced [batch, width] rows are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from recipe_engine.execute.steer import envoy_at
from recipe_engine.resolve.model_loader import LoadedModel

__all__ = ["read_activations", "site_location"]


def site_location(model: LoadedModel, site: str, layer: int, module: str | None) -> tuple[str, str]:
    n = model.shape.n_layers
    layer = layer % n if -n <= layer < n else layer
    if module is not None:
        return module.replace("{layer}", str(layer)), "output"
    location = model.adapter.locate(site, layer)
    return location.path, location.port


def _reduce(value: torch.Tensor, real: torch.Tensor, position: Any) -> torch.Tensor:
    """[B, T, D] -> [B, D] (or [B, T, D] for `all`), over each row's real tokens."""
    if position == "last":
        return value[:, -1, :]
    if position == "mean":
        weights = real.unsqueeze(-1).to(value.dtype)
        return (value * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
    if position == "all":
        return value
    ranks = real.long().cumsum(dim=1) - 1
    length = real.long().sum(dim=1)
    target = position + length if position < 0 else torch.full_like(length, position)
    if bool(((target < 0) | (target >= length)).any()):
        raise IndexError(f"position {position} is outside a prompt's tokens")
    pick = (ranks == target.unsqueeze(1)) & real.bool()
    return (value * pick.unsqueeze(-1).to(value.dtype)).sum(dim=1)


def read_activations(
    model: LoadedModel,
    prompts: Sequence[str],
    *,
    layer: int,
    site: str,
    module: str | None,
    position: Any,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Activations [len(prompts), width] (float32, CPU) at the given site and position."""
    path, port = site_location(model, site, layer, module)
    rows: list[torch.Tensor] = []
    tokenizer = model.tokenizer
    with model.lock, torch.inference_mode():
        for start in range(0, len(prompts), batch_size):
            batch = list(prompts[start : start + batch_size])
            real = tokenizer(batch, return_tensors="pt", padding=True)["attention_mask"]
            with model.nn.trace(batch):
                envoy = envoy_at(model.nn, path)
                value = envoy.input if port == "input" else envoy.output
                if isinstance(value, tuple):
                    value = value[0]
                saved = value.save()
            tensor = saved.detach().float().cpu()
            rows.append(_reduce(tensor, real, position))
            if progress is not None:
                progress(len(batch))
    return torch.cat(rows, dim=0)
