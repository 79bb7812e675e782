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


def _what_else(prefix: bytes) -> str:
    if prefix[:1] == b"\x80" and prefix[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return (
            "this is a pickle file, not safetensors; pickles can run code and are never "
            "loaded. Convert it with safetensors.torch.save_file"
        )
    if prefix[:4] == b"PK\x03\x04":
        return (
            "this is a zip archive (torch.save's format, which holds a pickle), not "
            "safetensors; it is never loaded. Convert it with safetensors.torch.save_file"
        )
    return "not a safetensors file (no valid header)"


def read_header(path: Path) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """(tensors by name, __metadata__). Raises SafetensorsError on anything malformed."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        prefix = handle.read(9)
        if len(prefix) < 9:
            raise SafetensorsError("file is too short to be safetensors")
        (length,) = struct.unpack("<Q", prefix[:8])
        # A safetensors header is a JSON object right after its 8-byte length. Only when that
        # is impossible is the file something else; then say what, for a useful message.
        if length > min(MAX_HEADER_BYTES, size - 8) or prefix[8:9] != b"{":
            raise SafetensorsError(_what_else(prefix))
        handle.seek(8)
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
