"""Vector files: every vector of a recipe in one safetensors file, with its provenance.

Layout: one tensor per vector, named as in the recipe, and `__metadata__` (string -> string):
    format          "recipe-engine.vectors/1"
    engine_version  the engine that wrote it
    recipe          the recipe's name;  recipe_sha256: hash of the recipe and its includes
    model           the model id (and revision)
    vectors         JSON: {name: provenance} (kind, layer, site, position, method, prompt
                    counts, data_sha256, norm, held-out accuracy for probes...)
No timestamps: the same recipe gives a byte-identical file. Read back in a recipe with
`kind: file, path: FILE, key: NAME`; that is how vectors are shared without re-extraction.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import torch

from recipe_engine.atomic import write_bytes_atomic

__all__ = ["FORMAT", "read_vector_file", "write_vector_file"]

FORMAT = "recipe-engine.vectors/1"


def write_vector_file(
    path: Path,
    vectors: dict[str, torch.Tensor],
    provenance: dict[str, dict[str, Any]],
    header: dict[str, str],
) -> None:
    from safetensors.torch import save

    tensors = {name: t.detach().float().contiguous().cpu() for name, t in sorted(vectors.items())}
    metadata = {
        "format": FORMAT,
        **header,
        "vectors": json.dumps(provenance, sort_keys=True, default=str),
    }
    write_bytes_atomic(path, canonical_safetensors(save(tensors, metadata=metadata)))


def canonical_safetensors(raw: bytes) -> bytes:
    """The same file with its JSON header keys sorted: safetensors writes `__metadata__` in
    random order, which would make two builds of the same recipe differ byte for byte. The
    sorted header has the same length, padded with spaces as safetensors pads it."""
    length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + length])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > length:  # cannot happen for a reordering; keep the original if it does
        return raw
    return raw[:8] + text + b" " * (length - len(text)) + raw[8 + length :]


def read_vector_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and metadata (the `vectors` entry decoded from JSON when present)."""
    from safetensors import safe_open

    tensors: dict[str, torch.Tensor] = {}
    with safe_open(str(path), framework="pt") as handle:
        metadata: dict[str, Any] = dict(handle.metadata() or {})
        for key in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
            tensors[key] = handle.get_tensor(key)
    if "vectors" in metadata:
        with contextlib.suppress(json.JSONDecodeError):
            metadata["vectors"] = json.loads(metadata["vectors"])
    return tensors, metadata
