"""Read a llama.cpp control vector (GGUF) without torch: what `kind: file` accepts besides
safetensors. The layout (export/gguf.py cites llama.cpp's source): tensors `direction.N`, one 1-D
F32 vector per layer N (the output of decoder block N), as llama.cpp and repeng write them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from recipe_engine.load.safetensors_header import SafetensorsError, TensorInfo

__all__ = ["DIRECTION", "is_gguf", "layer_of", "read_gguf_header", "read_gguf_vectors"]

DIRECTION = re.compile(r"^direction\.(\d+)$")
_MAGIC = b"GGUF"


def is_gguf(path: Path) -> bool:
    return path.suffix == ".gguf"


def layer_of(key: str) -> int | None:
    """The block a `direction.N` tensor steers (N), or None for any other name."""
    found = DIRECTION.match(key)
    return int(found.group(1)) if found else None


def _reader(path: Path) -> Any:  # gguf ships no type information
    try:
        import gguf
    except ImportError:
        raise SafetensorsError(
            "reading a GGUF control vector needs the gguf package: "
            "pip install 'recipe-engine[gguf]'"
        ) from None
    with open(path, "rb") as handle:
        if handle.read(4) != _MAGIC:
            raise SafetensorsError("not a GGUF file (no GGUF magic)")
    try:
        return gguf.GGUFReader(str(path))
    except (ValueError, OSError, IndexError) as exc:
        raise SafetensorsError(f"unreadable GGUF: {exc}") from None


def read_gguf_header(path: Path) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """{tensor name: dtype/shape} and the string metadata, like read_header for safetensors."""
    reader = _reader(path)
    tensors: dict[str, TensorInfo] = {}
    for tensor in reader.tensors:
        dtype = {"F32": "F32", "F16": "F16"}.get(tensor.tensor_type.name, tensor.tensor_type.name)
        shape = tuple(int(n) for n in reversed(list(tensor.shape)))  # GGUF lists ne0 first
        tensors[str(tensor.name)] = TensorInfo(dtype, shape)
    metadata: dict[str, str] = {}
    for name, field in reader.fields.items():
        if name.startswith("controlvector.") or name == "general.architecture":
            metadata[name] = str(field.contents())
    return tensors, metadata


def read_gguf_vectors(path: Path) -> dict[str, Any]:
    """{tensor name: float32 numpy array} of a control vector file."""
    import numpy as np

    reader = _reader(path)
    return {str(t.name): np.array(t.data, dtype=np.float32).reshape(-1) for t in reader.tensors}
