"""The metadata of a GGUF file, read from its header: no dequantizing, no numpy, no torch.

`validate --check-model` needs a model's layer count, width, heads and vocabulary; a GGUF file
states them as key-value pairs before its tensor data (llama.cpp's gguf.md: magic "GGUF",
version, tensor count, key-value count, then the pairs, then the tensor table). The pairs and
the table are read; the tensor data, which is most of the file, is never touched, but every
tensor must end inside the file (a truncated download is refused here, not after a conversion).
Every count and length is bounded, so a hostile or truncated file gives a GGUFError, never a
huge allocation or a hang.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

__all__ = ["GGML_BLOCKS", "GGUFError", "read_gguf_metadata", "shape_config_from_gguf"]

_MAGIC = b"GGUF"
_MAX_KEYS = 100_000
_MAX_STRING = 16 * 1024 * 1024  # one chat template or token; far above any real one
_MAX_ARRAY = 10_000_000  # vocabularies are ~50k-260k entries
# value type -> struct format of a scalar (llama.cpp's gguf_type enum)
_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9


class GGUFError(Exception):
    """Not a GGUF file, or one whose header cannot be read."""


class _Reader:
    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle

    def take(self, size: int) -> bytes:
        data = self.handle.read(size)
        if len(data) != size:
            raise GGUFError("the file ends inside its header (truncated?)")
        return data

    def number(self, fmt: str) -> int | float | bool:
        value: int | float | bool = struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]
        return value

    def count(self, limit: int, what: str) -> int:
        value = int(self.number("<Q"))
        if value > limit:
            raise GGUFError(f"the header claims {value} {what} (more than {limit})")
        return value

    def string(self) -> str:
        return self.take(self.count(_MAX_STRING, "bytes in a string")).decode("utf-8", "replace")

    def value(self, kind: int, depth: int = 0) -> object:
        if kind in _SCALARS:
            return self.number(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY and depth == 0:
            item_kind = int(self.number("<I"))
            length = self.count(_MAX_ARRAY, "array items")
            if item_kind in _SCALARS:  # skipped in one read: only the length is ever needed
                self.take(length * struct.calcsize(_SCALARS[item_kind]))
                return _Array(length)
            for _ in range(length):
                self.value(item_kind, depth + 1)
            return _Array(length)
        raise GGUFError(f"unknown value type {kind} in the header")


class _Array:
    """An array value: its length only (token lists are read past, not kept)."""

    def __init__(self, length: int) -> None:
        self.length = length


def read_gguf_metadata(path: Path) -> dict[str, object]:
    """The key-value pairs of a GGUF header; arrays become their lengths (int)."""
    try:
        with path.open("rb") as handle:
            reader = _Reader(handle)
            if reader.take(4) != _MAGIC:
                raise GGUFError("not a GGUF file (it does not start with 'GGUF')")
            version = int(reader.number("<I"))
            if version not in (2, 3):
                raise GGUFError(f"GGUF version {version} is not supported (2 and 3 are)")
            tensors = reader.count(1 << 32, "tensors")
            pairs = reader.count(_MAX_KEYS, "metadata keys")
            found: dict[str, object] = {}
            for _ in range(pairs):
                key = reader.string()
                value = reader.value(int(reader.number("<I")))
                found[key] = value.length if isinstance(value, _Array) else value
            _check_complete(reader, tensors, found, path.stat().st_size)
            return found
    except OSError as exc:
        raise GGUFError(f"cannot read it: {exc.strerror or exc}") from None


# ggml tensor type -> (elements per block, bytes per block): ggml.c's type_traits, as the gguf
# package's GGML_QUANT_SIZES states them (tests/test_gguf_extents.py holds the two together).
GGML_BLOCKS: dict[int, tuple[int, int]] = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    9: (32, 40), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210),
    15: (256, 292), 16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18),
    21: (256, 110), 22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4),
    27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66),
}  # fmt: skip
_MAX_DIMS = 8


def _check_complete(reader: _Reader, tensors: int, metadata: dict[str, object], size: int) -> None:
    """Every tensor's data must lie inside the file: a download cut short (or one chunk of a
    split file) has a complete header and missing tensors, which transformers would find only
    after minutes of conversion. The tensor table follows the key-value pairs (gguf.md): name,
    dimension count, dimensions, type, offset from the start of the aligned data section."""
    splits = metadata.get("split.count")
    if isinstance(splits, int) and splits > 1:
        number = metadata.get("split.no")
        which = f"chunk {int(number) + 1} of {splits}" if isinstance(number, int) else "one chunk"
        raise GGUFError(
            f"it is {which} of a split GGUF file; the engine reads one complete file: merge "
            "the chunks with llama.cpp's `llama-gguf-split --merge FIRST-CHUNK OUT.gguf`"
        )
    alignment = metadata.get("general.alignment", 32)
    alignment = alignment if isinstance(alignment, int) and alignment > 0 else 32
    ends: list[tuple[int, str]] = []
    for _ in range(tensors):
        name = reader.string()
        dims = int(reader.number("<I"))
        if dims > _MAX_DIMS:
            raise GGUFError(f"tensor {name!r} claims {dims} dimensions")
        elements = 1
        for _ in range(dims):
            elements *= int(reader.number("<Q"))
        kind, offset = int(reader.number("<I")), int(reader.number("<Q"))
        block, nbytes = GGML_BLOCKS.get(kind, (1, 0))  # an unknown type: its start at least
        ends.append((offset + -(-elements // block) * nbytes, name))
    start = -(-reader.handle.tell() // alignment) * alignment
    if ends:
        end, name = max(ends)
        if start + end > size:
            raise GGUFError(
                f"the file is truncated: tensor {name!r} ends at byte {start + end}, but the "
                f"file has {size} bytes (an interrupted download? fetch it again)"
            )


# GGUF architecture name -> transformers model_type, where they differ.
_MODEL_TYPES = {"gemma3": "gemma3_text", "gemma2": "gemma2", "gpt2": "gpt2"}


def shape_config_from_gguf(metadata: dict[str, object]) -> dict[str, object]:
    """The config.json keys model_config.shape_from_config reads, from GGUF metadata."""
    arch = metadata.get("general.architecture")
    if not isinstance(arch, str):
        raise GGUFError("the header has no general.architecture")

    def get(key: str) -> object:
        return metadata.get(f"{arch}.{key}")

    config: dict[str, object] = {
        "model_type": _MODEL_TYPES.get(arch, arch),
        "num_hidden_layers": get("block_count"),
        "hidden_size": get("embedding_length"),
        "num_attention_heads": get("attention.head_count"),
        "vocab_size": metadata.get("tokenizer.ggml.tokens"),
    }
    key_length = get("attention.key_length")
    if isinstance(key_length, int):
        config["head_dim"] = key_length
    # the width the attention output reads per head (MLA: not the key width); see model_config
    value_length = get("attention.value_length")
    if isinstance(value_length, int):
        config["v_head_dim"] = value_length
    experts = get("expert_count")  # a MoE model's routed experts (site: experts)
    if isinstance(experts, int):
        config["num_experts"] = experts
    return config
