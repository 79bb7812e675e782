"""Look inside vectors: norms, pairwise cosines, and what each one says through the unembedding.

"raw" reads a vector straight through the unembedding matrix (W_U v); "lens" first applies the
model's final norm, as the logit lens does with a residual-stream state. The tokens a vector
boosts and suppresses are the top and bottom of those logits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from recipe_engine.resolve.loaded_model import LoadedModel

__all__ = ["VectorFileInfo", "cosine_matrix", "inspect_vectors", "token_effects"]


def cosine_matrix(vectors: dict[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """Cosine similarity between every pair of 1-D vectors of the same width."""
    flat = {name: v.float() for name, v in vectors.items() if v.dim() == 1}
    table: dict[str, dict[str, float]] = {}
    for a, va in flat.items():
        table[a] = {}
        for b, vb in flat.items():
            if va.shape == vb.shape:
                denom = (va.norm() * vb.norm()).clamp_min(1e-12)
                table[a][b] = round(float(va @ vb / denom), 6)
    return table


def _decode(model: LoadedModel, ids: list[int]) -> list[str]:
    return [model.tokenizer.decode([i]) for i in ids]


def token_effects(model: LoadedModel, vector: torch.Tensor, top: int = 10) -> dict[str, Any]:
    """{"raw": {"boosted": [(token, logit)], "suppressed": [...]}, "lens": {...}}."""
    if vector.dim() != 1 or vector.shape[0] != model.shape.hidden_size:
        return {}
    hf = model.hf
    unembed = hf.get_submodule(model.adapter.unembed)
    dtype = next(hf.parameters()).dtype
    v = vector.to(device=model.device, dtype=dtype)
    views: dict[str, torch.Tensor] = {}
    with model.lock, torch.inference_mode():
        views["raw"] = unembed(v).float().cpu()
        if model.adapter.final_norm:
            norm = hf.get_submodule(model.adapter.final_norm)
            views["lens"] = unembed(norm(v.unsqueeze(0))[0]).float().cpu()
    effects: dict[str, Any] = {}
    k = min(top, views["raw"].shape[-1])
    for view, logits in views.items():
        hi = logits.topk(k)
        lo = (-logits).topk(k)
        effects[view] = {
            "boosted": list(
                zip(
                    _decode(model, hi.indices.tolist()),
                    [round(x, 4) for x in hi.values.tolist()],
                    strict=True,
                )
            ),
            "suppressed": list(
                zip(
                    _decode(model, lo.indices.tolist()),
                    [round(-x, 4) for x in lo.values.tolist()],
                    strict=True,
                )
            ),
        }
    return effects


@dataclass
class VectorFileInfo:
    info: dict[str, Any]  # a JSON object: file, metadata, vectors (with token effects), cosine
    model_id: str | None  # the model the token effects were read through, if any
    warnings: list[str] = field(default_factory=list)  # e.g. a vector the model cannot read


def inspect_vectors(path: str | Path, *, model: str | None = None, top: int = 10) -> VectorFileInfo:
    """What a vector file holds: metadata, per-vector shape, dtype, norm, provenance, the
    cosine matrix, and, through `model` (default: the one in the file's metadata), the `top`
    tokens each vector boosts and suppresses."""
    from recipe_engine.errors import UsageError
    from recipe_engine.format.model_spec import ModelSpec
    from recipe_engine.load.safetensors_header import SafetensorsError, read_header
    from recipe_engine.resolve.model_loader import load_model
    from recipe_engine.vectors.artifacts import read_vector_file

    shown, path = str(path), Path(path)
    if not path.is_file():
        raise UsageError(f"{shown}: no such file or directory")  # the CLI's one wording
    try:
        read_header(path)  # refuses pickles and malformed files before safetensors sees them
    except SafetensorsError as exc:
        raise UsageError(f"{shown}: {exc}") from None
    if model:
        _check_builtin(model)
    tensors, metadata = read_vector_file(path)
    model_id = model or str(metadata.get("model", "")).split("@")[0] or None
    effects: dict[str, Any] = {}
    warnings: list[str] = []
    if model_id:
        loaded = load_model(ModelSpec(id=model_id), Path.cwd())
        effects = {name: token_effects(loaded, t, top) for name, t in tensors.items()}
        warnings = _unread(tensors, effects, model_id, loaded.shape.hidden_size)
    info = {
        "file": str(path),
        "metadata": {k: v for k, v in metadata.items() if k != "vectors"},
        "vectors": {
            name: {
                "shape": list(t.shape),
                "dtype": str(t.dtype).replace("torch.", ""),
                "norm": round(float(t.float().norm()), 6),
                "finite": bool(torch.isfinite(t).all()),
                "provenance": (metadata.get("vectors") or {}).get(name, {}),
                "tokens": effects.get(name, {}),
            }
            for name, t in tensors.items()
        },
        "cosine": cosine_matrix(tensors),
    }
    return VectorFileInfo(info, model_id, warnings)


def _check_builtin(model_id: str) -> None:
    """--model builtin:NAME must name a builtin (a usage error, listed), before any loading."""
    from recipe_engine.builtin_models import BUILTINS, builtin_name
    from recipe_engine.errors import UsageError

    name = builtin_name(model_id)
    if name is not None and name not in BUILTINS:
        raise UsageError(
            f"--model {model_id}: no builtin model {name!r} "
            f"(available: {', '.join('builtin:' + n for n in sorted(BUILTINS))})"
        )


def _unread(
    tensors: dict[str, torch.Tensor], effects: dict[str, Any], model_id: str, width: int
) -> list[str]:
    """Why a vector got no token analysis: token_effects reads only 1-D vectors of the
    model's width; say so rather than silently drop it."""
    lines = []
    for name, t in tensors.items():
        if not effects[name]:
            why = (
                f"width {t.shape[-1]}, the model's is {width}"
                if t.shape[-1] != width
                else f"{t.shape[0]} rows (one per token), not one vector"
            )
            lines.append(f"no token analysis of {name} with {model_id} ({why})")
    return lines
