"""Load the model a recipe names, offline, as an nnsight TransformersModel.

builtin:NAME is built from the registry; a local folder is loaded from disk; a hub id must already
be in the local cache (`local_files_only=True`): the engine never downloads at run time.
`trust_remote_code` is true only when the recipe sets it (and always passed, so never asked).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import torch

from recipe_engine.builtin_models import builtin_name
from recipe_engine.errors import EnvironmentFailure
from recipe_engine.format.model_spec import ModelSpec
from recipe_engine.model_config import (
    ModelUnavailable,
    download_command,
    is_local_path,
    shape_from_config,
)
from recipe_engine.model_store import PACKAGE_PREFIX, LocalModel, local_model
from recipe_engine.resolve.architectures import adapter_for, heads_problem
from recipe_engine.resolve.experts import routed_experts
from recipe_engine.resolve.loaded_model import LoadedModel

__all__ = [
    "LoadedModel",
    "clear_model_cache",
    "load_model",
    "model_identity",
    "weights_fingerprint",
    "wrap_model",
]

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


_CACHE: dict[tuple[str, str | None, str, str, bool, str, str], LoadedModel] = {}
_CACHE_LOCK = threading.Lock()
# Held while a model is built or loaded: builds seed torch's global RNG, so two at once would
# interleave and produce other weights; and one load per spec is enough.
_BUILD_LOCK = threading.Lock()


def clear_model_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


def model_identity(spec: ModelSpec, recipe_dir: Path) -> str:
    model_id = spec.id
    local = _local(spec, recipe_dir)
    if local is not None:
        model_id = str(local.path.resolve())
    return f"{model_id}@{spec.revision or 'default'}:{spec.dtype}"


def _local(spec: ModelSpec, recipe_dir: Path) -> LocalModel | None:
    try:
        return local_model(spec.id, spec.gguf_file, recipe_dir)
    except ModelUnavailable as exc:  # pkg: of a package not installed (validation said so)
        raise EnvironmentFailure(str(exc)) from None


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise EnvironmentFailure(f"model.device is {name!r} but no CUDA device is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise EnvironmentFailure("model.device is 'mps' but MPS is not available")
    return torch.device(name)


def _from_pretrained(spec: ModelSpec, source: str) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    # trust_remote_code is always passed, False included: left unset (None), transformers asks
    # on stdin whether to run a repository's code when a terminal is attached, so a keypress
    # could run code the recipe never trusted. False makes it refuse instead.
    kwargs: dict[str, Any] = {
        "local_files_only": True,
        "trust_remote_code": spec.trust_remote_code,
    }
    if spec.revision:
        kwargs["revision"] = spec.revision
    dtype = "auto" if spec.dtype == "auto" else _DTYPES[spec.dtype]
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs)
    except Exception as exc:  # transformers raises many types for one cause: cannot load
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "trust_remote_code" in str(exc):
            raise EnvironmentFailure(
                f"{spec.id!r} needs its own Python code to load; set model.trust_remote_code: "
                "true in the recipe if you trust that repository"
            ) from None
        if is_local_path(spec.id) or spec.id.startswith(PACKAGE_PREFIX):
            raise EnvironmentFailure(
                f"cannot load the model folder {spec.id!r}: {type(exc).__name__}: {first}. It "
                "needs config.json, weights (model.safetensors) and tokenizer files, as "
                "save_pretrained writes them"
            ) from None
        raise EnvironmentFailure(
            f"cannot load hub model {spec.id!r} offline: {first}. The engine never downloads "
            f"at run time: fetch it first (`{download_command(spec.id, spec.revision)}`) or point "
            "model.id at a local folder"
        ) from None
    return model, tokenizer


def load_model(spec: ModelSpec, recipe_dir: Path, backend: str = "local") -> LoadedModel:
    """Load (or reuse from the in-process cache) the model of a recipe, for a backend:
    local and remote-local load the weights here; remote and vllm go through
    recipe_engine.resolve.backends (no weights here / vLLM's own loader)."""
    if backend in ("remote", "vllm"):
        from recipe_engine.resolve.backends import load_backend_model

        return load_backend_model(spec, backend)
    device = _device(spec.device)
    key = (
        model_identity(spec, recipe_dir),
        spec.revision,
        spec.dtype,
        str(device),
        spec.trust_remote_code,
        spec.architecture or "",
        backend,
    )
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
    with _BUILD_LOCK:
        with _CACHE_LOCK:
            if key in _CACHE:  # another thread built it while this one waited
                return _CACHE[key]
        loaded = _load_uncached(spec, recipe_dir, device)
        if backend == "remote-local":
            loaded.remote, loaded.backend = "local", backend
        with _CACHE_LOCK:
            return _CACHE.setdefault(key, loaded)


def _load_uncached(spec: ModelSpec, recipe_dir: Path, device: torch.device) -> LoadedModel:
    name = builtin_name(spec.id)
    hf: Any
    if name is not None:
        from recipe_engine.resolve.builtin_build import build_builtin

        hf, tokenizer = build_builtin(name)
        if spec.dtype in _DTYPES:
            hf = hf.to(dtype=_DTYPES[spec.dtype])
    else:
        local = _local(spec, recipe_dir)
        source = spec.id if local is None else str(local.path)
        if local is not None and local.gguf:
            from recipe_engine.resolve.gguf_cache import cached_gguf_folder

            source = str(cached_gguf_folder(local.path))
        hf, tokenizer = _from_pretrained(spec, source)
    return wrap_model(
        hf.to(device=device),
        tokenizer,
        identity=model_identity(spec, recipe_dir),
        architecture=spec.architecture,
    )


def weights_fingerprint(hf: Any) -> str:
    """A cheap hash of a model's config and weights: names, shapes, dtypes and a strided sample
    of up to 64 values per tensor. Cached vectors are keyed on it, so two models with the same
    name but other weights (retrained in place, or wrapped in memory) never share entries."""
    import hashlib

    digest = hashlib.sha256()
    config = hf.config.to_dict()
    # Neither says what the model computes: the library version, and the folder it was loaded
    # from (a builtin's is wherever the package is installed, so hashing it made vector files
    # and cache keys differ between two checkouts of the same repository).
    config.pop("transformers_version", None)
    config.pop("_name_or_path", None)
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    with torch.no_grad():
        for name, tensor in hf.state_dict().items():
            flat = tensor.detach().reshape(-1)
            step = max(1, flat.numel() // 64)
            sample = flat[::step][:64].float().cpu().numpy().tobytes()
            digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
            digest.update(sample)
    return digest.hexdigest()[:16]


def wrap_model(
    hf: Any, tokenizer: Any, *, identity: str = "in-memory", architecture: str | None = None
) -> LoadedModel:
    """Wrap an already-built transformers causal LM (and its tokenizer) for the engine."""
    from nnsight import TransformersModel
    from transformers.utils import logging as hf_logging

    # The engine reports problems itself; transformers' advice about attention masks for
    # unpadded single prompts (which the engine handles) would only confuse.
    hf_logging.set_verbosity_error()

    hf = hf.eval()
    if tokenizer.pad_token is None:
        # Batches are left-padded; the pad id only fills masked columns, so EOS is safe.
        tokenizer.pad_token = tokenizer.eos_token
    # GPT-2 adds wte(token_type_ids) when the tokenizer returns them: logits would shift.
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    config = hf.config.to_dict()
    shape = shape_from_config(config)
    adapter = adapter_for(hf, shape.model_type, shape.n_layers, architecture)
    wrapped = TransformersModel(hf, tokenizer=tokenizer)
    wrapped.tokenizer.padding_side = "left"  # position -1 is then every row's last real token
    experts, experts_refusals = routed_experts(hf, adapter, shape.n_layers)
    return LoadedModel(
        nn=wrapped,
        tokenizer=wrapped.tokenizer,
        shape=shape,
        adapter=adapter,
        identity=f"{identity}#{weights_fingerprint(hf)}",
        device=next(hf.parameters()).device,
        lock=threading.RLock(),
        heads_refusals=heads_problem(hf, adapter, shape),
        experts=experts,
        experts_refusals=experts_refusals,
    )
