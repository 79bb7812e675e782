"""vLLM through nnsight (`nnsight.modeling.vllm.VLLM`): steered generation at serving speed.

vLLM is an optional extra (`pip install 'recipe-engine[vllm]'`, Linux with a CUDA GPU); without
it this backend fails with that instruction, never with an ImportError.

What differs from the transformers backends, and how the engine handles it:
- decoder layers of most vLLM models (Llama, Qwen, Mistral...) return (hidden, residual) and
  add them inside the next layer's fused add-norm: the residual stream is their *sum*.
  resid_post ops act on the sum (execute/steer.py, `residual_pairs`);
- activations arrive per request as a flat [tokens, hidden] slab, not [batch, seq, hidden]:
  ops with `positions: all` act row by row and need no layout; token-selective positions are
  refused by validation for this backend;
- fused qkv and gate/up projections change module paths inside attention and MLP blocks,
  which only `module:` sites name; the heads site reads o_proj's input, which vLLM keeps;
- sampling settings are per request: every prompt is its own invoke with its own
  SamplingParams (seeded per prompt, so a run is reproducible).
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

import torch

from recipe_engine.errors import EnvironmentFailure
from recipe_engine.format.model_spec import ModelSpec
from recipe_engine.format.run_spec import GenerationSpec
from recipe_engine.model_config import shape_from_config
from recipe_engine.resolve.architectures import adapter_for
from recipe_engine.resolve.loaded_model import LoadedModel

__all__ = ["EXTRA", "load_vllm_model", "require_vllm", "sampling_params"]

EXTRA = "vllm"
INSTALL = f"pip install 'recipe-engine[{EXTRA}]'"


def require_vllm() -> None:
    """Fail with the install instruction when vLLM (or nnsight's vLLM module) is missing."""
    try:
        importlib.import_module("vllm")
        importlib.import_module("nnsight.modeling.vllm")
    except ImportError as exc:
        raise EnvironmentFailure(
            f"run.backend vllm needs vLLM, which is not installed ({exc.name or 'vllm'}): "
            f"{INSTALL} (Linux, CUDA GPU), or run with --backend local"
        ) from None


def sampling_params(gen: GenerationSpec, prompt_index: int, trace_only: bool) -> dict[str, Any]:
    """The recipe's generation settings as vLLM SamplingParams keywords for one prompt.

    Greedy is temperature 0. A seed becomes seed + prompt index: each prompt is its own
    request, so one shared seed would draw the same noise for every prompt.
    """
    params: dict[str, Any] = {"max_tokens": 1 if trace_only else gen.max_new_tokens}
    if not trace_only and gen.min_new_tokens is not None:
        params["min_tokens"] = gen.min_new_tokens
    if gen.repetition_penalty is not None:
        params["repetition_penalty"] = gen.repetition_penalty
    if gen.do_sample and not trace_only:
        params["temperature"] = 1.0 if gen.temperature is None else gen.temperature
        if gen.top_k is not None:
            params["top_k"] = gen.top_k
        if gen.top_p is not None:
            params["top_p"] = gen.top_p
        if gen.seed is not None:
            params["seed"] = gen.seed + prompt_index
    else:
        params["temperature"] = 0.0
    return params


def load_vllm_model(spec: ModelSpec) -> LoadedModel:
    require_vllm()
    from nnsight.modeling.vllm import VLLM

    kwargs: dict[str, Any] = {"dispatch": True, "trust_remote_code": spec.trust_remote_code}
    if spec.revision:
        kwargs["revision"] = spec.revision
    if spec.dtype != "auto":
        kwargs["dtype"] = spec.dtype
    try:
        nn = VLLM(spec.id, **kwargs)
    except Exception as exc:  # vLLM raises many types for "cannot start the engine"
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EnvironmentFailure(f"vLLM could not load {spec.id!r}: {first}") from None
    module = nn._module
    shape = shape_from_config(module.config.to_dict())
    return LoadedModel(
        nn=nn,
        tokenizer=nn.tokenizer,
        shape=shape,
        adapter=adapter_for(module, shape.model_type, shape.n_layers, spec.architecture),
        identity=f"vllm:{spec.id}@{spec.revision or 'default'}:{spec.dtype}",
        device=torch.device("cpu"),  # vectors travel to the worker as CPU tensors
        lock=threading.RLock(),
        backend="vllm",
    )
