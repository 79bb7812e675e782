"""Read a safetensors header without torch: 8 bytes of length, then a JSON table of tensors.

Enough to check, at validation time, that a vector file really is safetensors (a pickle renamed
`.safetensors` is refused here and never unpickled), that the key exists, and its dtype and shape.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

__all__ = ["SafetensorsError", "TensorInfo", "read_header"]

MAX_HEADER_BYTES = 100 << 20
FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})
# Bytes per element of the safetensors dtypes, to check that a header's shapes and data offsets
# agree: a file whose header lies about either is corrupt, and validation should say so rather
# than let the loader fail later.
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
    "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4,
    "U64": 8, "I64": 8, "F64": 8,
}  # fmt: skip
REBUILD = "rebuild the file (steer vectors build, or safetensors.torch.save_file)"


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
    return f"not a safetensors file (no valid header); {REBUILD}"


def _int_list(value: object) -> TypeGuard[list[int]]:
    return isinstance(value, list) and all(type(v) is int for v in value)


def read_header(path: Path) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """(tensors by name, __metadata__). Raises SafetensorsError on anything malformed."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        prefix = handle.read(9)
        if len(prefix) < 9:
            raise SafetensorsError(f"file is too short to be safetensors; {REBUILD}")
        (length,) = struct.unpack("<Q", prefix[:8])
        # A safetensors header is a JSON object right after its 8-byte length. Only when that
        # is impossible is the file something else; then say what, for a useful message.
        if length > min(MAX_HEADER_BYTES, size - 8) or prefix[8:9] != b"{":
            raise SafetensorsError(_what_else(prefix))
        handle.seek(8)
        try:
            header = json.loads(handle.read(length))
        # ValueError besides JSONDecodeError: an integer of over 4300 digits; RecursionError:
        # arrays nested thousands deep. Both are a corrupt header, not an engine failure.
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise SafetensorsError(
                f"not a safetensors file (header is not JSON); {REBUILD}"
            ) from None
    if not isinstance(header, dict):
        raise SafetensorsError("not a safetensors file (header is not a JSON object)")
    metadata = header.pop("__metadata__", {}) or {}
    tensors: dict[str, TensorInfo] = {}
    data_size = size - 8 - length
    for name, entry in header.items():
        # Strictly typed, as safetensors itself reads it: int() would take "44" as [4, 4], 4.5
        # as 4 and true as 1, and fail with OverflowError on 1e999 (JSON's infinity).
        shape_list = entry.get("shape") if isinstance(entry, dict) else None
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("dtype"), str)
            or not _int_list(shape_list)
            or not _int_list(offsets)
            or len(offsets) != 2
        ):
            raise SafetensorsError(f"tensor {name!r}: malformed header entry; {REBUILD}")
        dtype = entry["dtype"]
        shape = tuple(shape_list)
        start, end = offsets
        if not 0 <= start <= end <= data_size:
            raise SafetensorsError(
                f"tensor {name!r}: data offsets outside the file (truncated?); {REBUILD}"
            )
        itemsize = DTYPE_BYTES.get(dtype)
        if any(d < 0 for d in shape):
            raise SafetensorsError(
                f"tensor {name!r}: negative dimension in {list(shape)}; {REBUILD}"
            )
        if itemsize is not None and end - start != math.prod(shape) * itemsize:
            raise SafetensorsError(
                f"tensor {name!r}: header says {dtype} {list(shape)} "
                f"({math.prod(shape) * itemsize} bytes) but its data is {end - start} bytes; "
                f"the file is corrupt: {REBUILD}"
            )
        tensors[name] = TensorInfo(dtype, shape)
    if not isinstance(metadata, dict):
        raise SafetensorsError("__metadata__ must be a JSON object")
    return tensors, {str(k): str(v) for k, v in metadata.items()}
