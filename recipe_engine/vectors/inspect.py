"""Look inside vectors: norms, pairwise cosines, and what each one says through the unembedding.

"raw" reads a vector straight through the unembedding matrix (W_U v); "lens" first applies the
model's final norm, as the logit lens does with a residual-stream state. The tokens a vector
boosts and suppresses are the top and bottom of those logits.
"""

from __future__ import annotations

from dataclasses import dataclass
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
        raise UsageError(f"{shown}: no such file")
    try:
        read_header(path)  # refuses pickles and malformed files before safetensors sees them
    except SafetensorsError as exc:
        raise UsageError(f"{shown}: {exc}") from None
    tensors, metadata = read_vector_file(path)
    model_id = model or str(metadata.get("model", "")).split("@")[0] or None
    effects: dict[str, Any] = {}
    if model_id:
        loaded = load_model(ModelSpec(id=model_id), Path.cwd())
        effects = {name: token_effects(loaded, t, top) for name, t in tensors.items()}
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
    return VectorFileInfo(info, model_id)
