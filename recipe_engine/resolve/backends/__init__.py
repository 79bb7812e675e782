"""Where a recipe's traces run: this machine, NDIF, or vLLM, all through nnsight.

    local         weights loaded here; traces run here
    remote-local  weights loaded here; every trace is serialized exactly as for NDIF, then
                  deserialized (with this project's modules hidden) and run here: an offline
                  check that a recipe will survive the trip (nnsight's `remote="local"`)
    remote        NDIF: config and tokenizer here (no weights), traces run on NDIF's copy
    vllm          nnsight's vLLM integration: vLLM loads and serves the model (CUDA GPU)

The same compiled plan runs on all of them: the trace body (execute/steer.py) is plain tensor
arithmetic on the model's own activations, which is what NDIF accepts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recipe_engine.errors import UsageError
from recipe_engine.model_config import BACKENDS, machine_only_kind

if TYPE_CHECKING:
    from recipe_engine.format.model_spec import ModelSpec
    from recipe_engine.resolve.loaded_model import LoadedModel

__all__ = ["BACKENDS", "describe_backend", "load_backend_model", "machine_only_kind"]


def load_backend_model(spec: ModelSpec, backend: str) -> LoadedModel:
    """A LoadedModel for the backends that do not load weights here."""
    if backend == "remote":
        from recipe_engine.resolve.backends.ndif import load_remote_model

        return load_remote_model(spec)
    if backend == "vllm":
        from recipe_engine.resolve.backends.vllm import load_vllm_model

        return load_vllm_model(spec)
    raise UsageError(f"unknown backend {backend!r} (one of {', '.join(BACKENDS)})")


def describe_backend(backend: str, prompts: int, vectors: dict[str, int]) -> dict[str, object]:
    """What `steer explain` says about a backend: where it runs and what leaves the machine."""
    shipped = [
        f"{prompts} prompt(s) and the texts of text metrics",
        *(
            f"vector {name!r} ({f'{size} numbers' if size >= 0 else 'hidden-size numbers'})"
            for name, size in sorted(vectors.items())
        ),
        "the compiled plan (ops, layers, positions, strengths) as serialized trace code",
    ]
    if backend == "remote":
        try:
            from recipe_engine.resolve.backends.ndif import ndif_host

            host = ndif_host()
        except ImportError:  # a torch-free install (explain --no-model): nnsight's config absent
            host = "the NDIF host in nnsight's config"
        return {
            "backend": "remote",
            "where": f"NDIF ({host}), through nnsight remote=True",
            "leaves_the_machine": [*shipped, "the model id", "the NDIF API key (to sign in)"],
        }
    if backend == "vllm":
        return {
            "backend": "vllm",
            "where": "this machine's vLLM engine (nnsight.modeling.vllm.VLLM), GPU",
            "leaves_the_machine": [],
        }
    if backend == "remote-local":
        return {
            "backend": "remote-local",
            "where": "this machine, each trace serialized and deserialized as for NDIF",
            "leaves_the_machine": [],
        }
    return {"backend": "local", "where": "this machine", "leaves_the_machine": []}
