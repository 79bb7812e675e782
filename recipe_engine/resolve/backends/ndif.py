"""NDIF: run traces on a hosted model through nnsight's `remote=True`.

Nothing here handles the network: nnsight does. This module checks what can be checked before
a request is sent (an API key, a hub model id), and loads the model *without weights*: nnsight's
LanguageModel reads the config and tokenizer (from the hub, or the local cache offline) and
builds the module tree on the meta device, which is all a trace needs to be written against.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import torch

from recipe_engine.errors import EnvironmentFailure
from recipe_engine.format.model_spec import ModelSpec
from recipe_engine.model_config import machine_only_kind, shape_from_config
from recipe_engine.resolve.architectures import adapter_for
from recipe_engine.resolve.experts import routed_experts
from recipe_engine.resolve.loaded_model import LoadedModel

__all__ = ["API_KEY_VARIABLE", "api_key", "load_remote_model", "ndif_host"]

API_KEY_VARIABLE = "NDIF_API_KEY"


def api_key() -> str | None:
    """The key nnsight will send: its config (which reads NDIF_API_KEY) or the variable."""
    from nnsight import CONFIG

    configured = getattr(CONFIG.API, "APIKEY", None)
    return configured or os.environ.get(API_KEY_VARIABLE) or None


def ndif_host() -> str:
    try:
        from nnsight import CONFIG

        return str(CONFIG.API.HOST)
    except Exception:  # explain must not fail on a broken nnsight config
        return "the NDIF host in nnsight's config"


def check_remote(spec: ModelSpec) -> None:
    """Fail early, with what to do, before anything is sent."""
    kind = machine_only_kind(spec.id)
    if kind is not None:
        raise EnvironmentFailure(
            f"run.backend remote runs models NDIF hosts, by hub id; {spec.id!r} is {kind}, "
            "which exists only on this machine. Use backend local, or remote-local to check "
            "the recipe survives NDIF's serialization"
        )
    if not api_key():
        raise EnvironmentFailure(
            f"run.backend remote needs an NDIF API key: set {API_KEY_VARIABLE} in the "
            "environment (keys: https://login.ndif.us). A recipe never carries the key"
        )


def load_remote_model(spec: ModelSpec) -> LoadedModel:
    from nnsight import LanguageModel

    check_remote(spec)
    kwargs: dict[str, Any] = {"trust_remote_code": spec.trust_remote_code}
    if spec.revision:
        kwargs["revision"] = spec.revision
    try:
        nn = LanguageModel(spec.id, **kwargs)  # meta device: no weights are loaded here
    except Exception as exc:  # transformers raises many types for "cannot read the config"
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EnvironmentFailure(
            f"cannot read the config and tokenizer of {spec.id!r} for a remote run: {first}"
        ) from None
    tokenizer = nn.tokenizer
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    module = nn._module
    shape = shape_from_config(module.config.to_dict())
    adapter = adapter_for(module, shape.model_type, shape.n_layers, spec.architecture)
    experts, experts_refusals = routed_experts(module, adapter, shape.n_layers)  # meta: no weights
    return LoadedModel(
        nn=nn,
        tokenizer=tokenizer,
        shape=shape,
        adapter=adapter,
        # no weights here to fingerprint: the id and revision are what NDIF serves
        identity=f"ndif:{spec.id}@{spec.revision or 'default'}",
        device=torch.device("cpu"),  # vectors travel as CPU tensors; ops move them (ops.py)
        lock=threading.RLock(),
        remote=True,
        backend="remote",
        experts=experts,
        experts_refusals=experts_refusals,
    )
