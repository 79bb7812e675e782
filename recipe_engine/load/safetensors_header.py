"""Read a safetensors header without torch: 8 bytes of length, then a JSON table of tensors.

Enough to check, at validation time, that a vector file really is safetensors (a pickle renamed
`.safetensors` is refused here and never unpickled), that the key exists, and its dtype and shape.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SafetensorsError", "TensorInfo", "read_header"]

MAX_HEADER_BYTES = 100 << 20
FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})


class SafetensorsError(ValueError):
    pass


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]


def read_header(path: Path) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """(tensors by name, __metadata__). Raises SafetensorsError on anything malformed."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise SafetensorsError("file is too short to be safetensors")
        if prefix[:1] == b"\x80":
            raise SafetensorsError(
                "this is a pickle file, not safetensors; pickles can run code and are never "
                "loaded. Convert it with safetensors.torch.save_file"
            )
        (length,) = struct.unpack("<Q", prefix)
        if length > min(MAX_HEADER_BYTES, size - 8):
            raise SafetensorsError("not a safetensors file (header length is impossible)")
        try:
            header = json.loads(handle.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise SafetensorsError("not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise SafetensorsError("not a safetensors file (header is not a JSON object)")
    metadata = header.pop("__metadata__", {}) or {}
    tensors: dict[str, TensorInfo] = {}
    data_size = size - 8 - length
    for name, entry in header.items():
        try:
            dtype = str(entry["dtype"])
            shape = tuple(int(d) for d in entry["shape"])
            start, end = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise SafetensorsError(f"tensor {name!r}: malformed header entry") from None
        if not 0 <= start <= end <= data_size:
            raise SafetensorsError(f"tensor {name!r}: data offsets outside the file (truncated?)")
        tensors[name] = TensorInfo(dtype, shape)
    if not isinstance(metadata, dict):
        raise SafetensorsError("__metadata__ must be a JSON object")
    return tensors, {str(k): str(v) for k, v in metadata.items()}
