"""The shape of a model from its config alone: layers, width, heads. No torch, no weights.

Reads the builtin registry, a local folder's config.json, or a hub model's config.json in the
local Hugging Face cache (never the network).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recipe_engine.builtin_models import BUILTINS, builtin_name

__all__ = [
    "BACKENDS",
    "ModelShape",
    "ModelUnavailable",
    "cached_hub_folder",
    "custom_code_entries",
    "custom_code_message",
    "download_command",
    "hub_cache",
    "is_local_path",
    "machine_only_kind",
    "read_model_shape",
]


class ModelUnavailable(Exception):
    """The config cannot be found here; `code` is a stable diagnostic code."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class ModelShape:
    model_type: str
    n_layers: int
    hidden_size: int
    n_heads: int
    head_dim: int  # width of one head where the attention output projection reads it
    head_dim_key: str = "head_dim"  # the config key head_dim came from (explain shows it)
    n_experts: int | None = None  # routed experts per MoE block; None: the config names none

    @property
    def heads_width(self) -> int:
        """Width of the attention output projection's input: n_heads x head_dim."""
        return self.n_heads * self.head_dim

    def head_columns(self, head: int) -> tuple[int, int]:
        """[start, end) of one head's columns in the output projection's input."""
        return head * self.head_dim, (head + 1) * self.head_dim


_LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
_HIDDEN_KEYS = ("hidden_size", "n_embd", "d_model", "dim")
_HEAD_KEYS = ("num_attention_heads", "n_head", "num_heads", "n_heads")
# Routed experts per MoE block: Qwen-MoE's num_experts, Mixtral/OLMoE/GPT-OSS's
# num_local_experts, DeepSeek's n_routed_experts, ERNIE's moe_num_experts.
_EXPERT_KEYS = ("num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts")


def is_local_path(model_id: str) -> bool:
    return model_id.startswith(("./", "../", "/")) or model_id in (".", "..")


def _first(config: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = config.get(key)
        # Positive only: a count of 0 or less is a broken config (0 heads would divide by zero)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def shape_from_config(config: dict[str, Any]) -> ModelShape:
    # Multimodal and some new families nest the language model's config.
    if _first(config, _LAYER_KEYS) is None and isinstance(config.get("text_config"), dict):
        config = config["text_config"]
    layers = _first(config, _LAYER_KEYS)
    hidden = _first(config, _HIDDEN_KEYS)
    heads = _first(config, _HEAD_KEYS)
    if layers is None or hidden is None or heads is None:
        raise ModelUnavailable(
            "model-config-unknown",
            "config.json does not say the number of layers, hidden size and heads in a form "
            "this engine knows",
        )
    head_dim, key = hidden // heads, "hidden_size / heads"
    # The heads site slices the input of the attention output projection, which is built from
    # the value heads. Multi-head latent attention (DeepSeek V2/V3, MiniCPM3, Kimi, GLM-4 MoE
    # lite...) has values of v_head_dim while its config's head_dim is the rotary width
    # (qk_rope_head_dim): v_head_dim wins wherever a config has it.
    for candidate in ("v_head_dim", "head_dim"):
        value = config.get(candidate)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            head_dim, key = value, candidate
            break
    model_type = str(config.get("model_type", "unknown"))
    experts = _first(config, _EXPERT_KEYS)
    return ModelShape(model_type, layers, hidden, heads, head_dim, key, experts)


def hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return Path(home) / "hub"


def download_command(repo_id: str, revision: str | None = None) -> str:
    """The shell command that fetches a hub model into the cache, spelled for the installed
    huggingface_hub: it ships `hf` since 0.34 and dropped `huggingface-cli` in 1.0."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        scripts = {
            e.name
            for e in distribution("huggingface_hub").entry_points
            if e.group == "console_scripts"
        }
    except PackageNotFoundError:
        scripts = set()
    tool = "huggingface-cli" if "huggingface-cli" in scripts and "hf" not in scripts else "hf"
    return f"{tool} download {repo_id}" + (f" --revision {revision}" if revision else "")


def _cached_hub_config(repo_id: str, revision: str | None) -> Path:
    folder = hub_cache() / ("models--" + repo_id.replace("/", "--"))
    ref = revision or "main"
    ref_file = folder / "refs" / ref
    commit = ref_file.read_text().strip() if ref_file.is_file() else ref
    candidate = folder / "snapshots" / commit / "config.json"
    if candidate.is_file():
        return candidate
    raise ModelUnavailable(
        "model-not-cached",
        f"hub model {repo_id!r}{'@' + revision if revision else ''} is not in the local cache "
        f"({folder}); the engine never downloads at run time. Fetch it first with "
        f"`{download_command(repo_id, revision)}`, or point model.id at a local folder",
    )


def cached_hub_folder(repo_id: str, revision: str | None) -> Path:
    """The snapshot folder of a hub model in the local cache (ModelUnavailable if absent)."""
    return _cached_hub_config(repo_id, revision).parent


# Files in which a model repository can name its own Python classes (`auto_map`); transformers
# imports those .py files from the folder when asked to load them with trust_remote_code.
_CODE_CONFIGS = ("config.json", "tokenizer_config.json", "processor_config.json")


def custom_code_entries(folder: Path) -> list[str]:
    """`file: AutoClass -> module.Class` for every custom-code class a model folder declares.

    Read as JSON, never executed: this is how validation refuses such a folder, torch-free,
    before transformers could import (or ask on stdin whether to import) any of its code.
    Unreadable files are skipped; loading reports them."""
    found: list[str] = []
    for name in _CODE_CONFIGS:
        try:
            config = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            # ValueError: bad JSON or UTF-8, and also an integer past Python's 4300-digit
            # limit; RecursionError: arrays nested past the recursion limit
            continue
        auto_map = config.get("auto_map") if isinstance(config, dict) else None
        if isinstance(auto_map, dict):
            found += [f"{name}: {key} -> {value}" for key, value in auto_map.items()]
        elif isinstance(auto_map, list) and auto_map:  # older tokenizer configs: a list
            found.append(f"{name}: {auto_map}")
    return found


def custom_code_message(model_id: str, entries: list[str]) -> str:
    more = f" and {len(entries) - 1} more" if len(entries) > 1 else ""
    return (
        f"model {model_id!r} ships its own Python code ({entries[0]}{more}), which the engine "
        "never runs unless the recipe itself sets `model.trust_remote_code: true`; set it only "
        "if you trust that code"
    )


def read_model_shape(model_id: str, revision: str | None, recipe_dir: Path) -> ModelShape:
    name = builtin_name(model_id)
    if name is not None:
        if name not in BUILTINS:
            raise ModelUnavailable("unknown-builtin", f"no builtin model {name!r}")
        spec = BUILTINS[name]
        if spec.weights_dir is not None:
            config_file = spec.weights_dir / "config.json"
            if not config_file.is_file():
                raise ModelUnavailable(
                    "model-not-found",
                    f"builtin {name!r} ships no {config_file}; reinstall the package",
                )
            return shape_from_config(json.loads(config_file.read_text(encoding="utf-8")))
        return shape_from_config({"model_type": spec.model_type, **spec.config})
    if is_local_path(model_id):
        path = Path(model_id)
        config_file = (path if path.is_absolute() else recipe_dir / path) / "config.json"
        if not config_file.is_file():
            raise ModelUnavailable("model-not-found", f"no config.json in {model_id!r}")
    else:
        config_file = _cached_hub_config(model_id, revision)
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        # ValueError covers bad JSON and UTF-8 and an integer past Python's 4300-digit limit;
        # RecursionError, arrays nested past the recursion limit: a broken file, not a crash
        raise ModelUnavailable(
            "model-config-invalid", f"cannot read {config_file}: {exc}"
        ) from None
    if not isinstance(config, dict):
        raise ModelUnavailable("model-config-invalid", f"{config_file} is not a JSON object")
    return shape_from_config(config)


# Where a recipe's traces can run (run.backend; recipe_engine/resolve/backends/ loads for each).
# Here, torch- and pydantic-free, because the CLI's --backend choices and validation need it.
BACKENDS = ("local", "remote", "remote-local", "vllm")


def machine_only_kind(model_id: str) -> str | None:
    """ "a builtin model" / "a local folder" for ids that exist only on this machine (which
    NDIF cannot serve and the vLLM backend does not load), None for a hub id. Torch-free:
    validation uses it too."""
    if builtin_name(model_id) is not None:
        return "a builtin model"
    if model_id.startswith("pkg:"):
        return "a package's file"
    return "a local folder" if is_local_path(model_id) else None
