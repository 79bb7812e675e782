"""What a vector read from a file says about itself: a GGUF control vector's `direction.N`
steers block N's output; an SAE feature is one decoder row, at the SAE's hook point."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from recipe_engine.format.vectors import FileVector, SaeFeatureVector
from recipe_engine.load.gguf_vectors import is_gguf, layer_of
from recipe_engine.load.sae_lens import read_sae_config

__all__ = ["file_vector"]


def file_vector(
    spec: FileVector, tensor: torch.Tensor, path: Path, provenance: dict[str, Any]
) -> torch.Tensor:
    """The vector `spec` names in the loaded `tensor` of file `path`, provenance filled in.
    Shapes and the feature's range were checked at validation (validate/references.py)."""
    if isinstance(spec, SaeFeatureVector):
        cfg = read_sae_config(path)
        provenance.update(
            kind="sae_feature",
            feature=spec.feature,
            d_sae=int(tensor.shape[0]),
            layer=cfg.layer,
            site=cfg.site,
            hook_name=cfg.hook_name,
        )
        return tensor[spec.feature].clone()
    if is_gguf(path):
        layer = layer_of(spec.key or "")
        if layer is not None:
            provenance.update(layer=layer, site="resid_post", source="gguf control vector")
    return tensor
