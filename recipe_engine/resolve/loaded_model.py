"""A model ready to trace, whichever backend loaded it (model_loader.py, backends/).

Its own module so that the loaders, the backends and every later stage name the type without
importing each other.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import torch

from recipe_engine.model_config import ModelShape
from recipe_engine.resolve.architectures import Adapter, envoy_at
from recipe_engine.resolve.experts import ExpertsModule

__all__ = ["LoadedModel"]


@dataclass
class LoadedModel:
    """A model ready to trace. `lock` serializes runs (nnsight is not thread-safe) and every
    use of the tokenizer: a fast tokenizer's padding setting is state shared by all callers, so
    an unpadded call in one thread can land inside another's padded batch."""

    nn: Any  # nnsight TransformersModel
    tokenizer: Any
    shape: ModelShape
    adapter: Adapter
    identity: str  # what a cached vector is keyed on: id, revision, dtype
    device: torch.device
    lock: threading.RLock
    _widths: dict[str, int] = field(default_factory=dict)
    # nnsight's `remote=`: False (here), True (NDIF) or "local" (serialized as for NDIF, run
    # here). Trace bodies never mention this object: it holds a lock, which cannot be shipped.
    remote: bool | str = False
    backend: str = "local"
    # Why site: heads cannot be placed, by layer (architectures.heads_problem); empty: anywhere
    heads_refusals: dict[int, str] = field(default_factory=dict)
    # site: experts: each MoE layer's routed-experts module, and why the other layers have none
    # (resolve/experts.routed_experts)
    experts: dict[int, ExpertsModule] = field(default_factory=dict)
    experts_refusals: dict[int, str] = field(default_factory=dict)

    @property
    def backend_kwargs(self) -> dict[str, Any]:
        """Keywords for `nn.trace` / `nn.generate` on this backend. Passed at the call site:
        nnsight finds a trace's body from the frame that opens it, so no wrapper may open it."""
        return {"remote": self.remote} if self.remote else {}

    @property
    def persistent_edits(self) -> bool:
        """Whether `nn.edit(inplace=True)` persists across calls. A remote server keeps no
        state between requests, so edit mode there applies the plan inside every call
        (the same computation; execute/runner.generate_pass)."""
        return not self.remote

    def module_width(self, path: str) -> int:
        """Last dimension of a module's output, measured once by a one-token forward (the
        `module:` escape hatch can point anywhere, e.g. an MLP's 4x-wide up-projection)."""
        if path not in self._widths:
            nn = self.nn
            with self.lock, torch.inference_mode(), nn.trace("a", **self.backend_kwargs):
                out = envoy_at(nn, path).output
                if isinstance(out, tuple):
                    out = out[0]
                saved = out.save()
            self._widths[path] = int(saved.shape[-1])
        return self._widths[path]

    @property
    def hf(self) -> torch.nn.Module:
        module: torch.nn.Module = self.nn._module
        return module
