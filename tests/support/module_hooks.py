"""Plain PyTorch hooks that the architecture tests write out by hand as the reference: edit a
module's output, or its first input whether it arrives positionally or as hidden_states=."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["edit_first", "pre_hook"]


def edit_first(value: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """`fn` applied to a module output's hidden states (a tensor, or a tuple's first item)."""
    if isinstance(value, tuple):
        return (fn(value[0]), *value[1:])
    return fn(value)


def pre_hook(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[..., Any]:
    """A forward pre-hook (with_kwargs=True) that edits the module's first input."""

    def hook(mod: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if args:
            return (fn(args[0]), *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": fn(kwargs["hidden_states"])}

    return hook
