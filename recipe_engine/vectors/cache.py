"""A content-addressed cache of extracted vectors.

Key: SHA-256 of the model's identity, the vector's source spec and the hash of its prompt data,
plus a cache format version. A second run of the same recipe extracts nothing; change a prompt,
a layer or the model and the key changes.

Entries are safetensors files written atomically (temporary file + rename), so two processes
sharing the cache never see or leave a half-written entry; the worst case is both computing the
same vector and one rename winning. A process killed outright (SIGKILL) may strand a hidden
temporary file: lookups never read one, and the next write of that entry deletes it (atomic.py);
Ctrl-C is held while an entry is written, so it strands nothing. Each entry stores the SHA-256
of its tensor bytes: an entry that fails to parse or to match is deleted and rebuilt, never used.

Location: $STEER_CACHE_DIR, else $XDG_CACHE_HOME/recipe-engine/vectors, else
~/.cache/recipe-engine/vectors. STEER_NO_CACHE=1 turns it off.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from recipe_engine.atomic import write_bytes_atomic

__all__ = [
    "CACHE_VERSION",
    "CHECKPOINT_ENV",
    "VectorCache",
    "cache_key",
    "default_cache",
    "tensor_sha256",
]

# 2: `position: mean` leaves out tokenizer-added markers, so older cached means differ.
CACHE_VERSION = 2


def tensor_sha256(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.detach().contiguous().cpu().numpy().tobytes()).hexdigest()


def cache_key(parts: dict[str, Any]) -> str:
    text = json.dumps({"cache_version": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class VectorCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.hits = 0
        self.misses = 0
        self.rebuilt = 0

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.safetensors"

    def get(self, key: str) -> tuple[torch.Tensor, dict[str, Any]] | None:
        from safetensors.torch import load

        path = self._path(key)
        if not path.is_file():
            self.misses += 1
            return None
        try:
            raw = path.read_bytes()
            tensor = load(raw)["vector"]
            metadata = _metadata(raw)
            if metadata.get("sha256") != tensor_sha256(tensor):
                raise ValueError("checksum mismatch")
            provenance = json.loads(metadata.get("provenance", "{}"))
        except Exception:  # a corrupt entry, whatever the damage: drop it and rebuild
            path.unlink(missing_ok=True)
            self.rebuilt += 1
            self.misses += 1
            return None
        self.hits += 1
        return tensor, provenance

    def put(self, key: str, tensor: torch.Tensor, provenance: dict[str, Any]) -> None:
        from safetensors.torch import save

        tensor = tensor.detach().contiguous().cpu()
        metadata = {
            "sha256": tensor_sha256(tensor),
            "provenance": json.dumps(provenance, sort_keys=True, default=str),
        }
        write_bytes_atomic(self._path(key), save({"vector": tensor}, metadata=metadata))
        _test_checkpoint()


# Test hook, set only by tests/interruption_harness.py: see _test_checkpoint.
CHECKPOINT_ENV = "STEER_TEST_CHECKPOINT"
_CHECKPOINT_WAIT_S = 600.0


def _test_checkpoint() -> None:
    """With $STEER_TEST_CHECKPOINT=PATH, the first cache entry this process writes creates PATH,
    then the process waits for a signal (at most ten minutes, then goes on). An interruption
    test signals it there: mid-run for certain, with no race against the run finishing first,
    whatever the machine's load. Unset, as everywhere but in that test, this does nothing."""
    marker = os.environ.pop(CHECKPOINT_ENV, None)  # popped: once per process
    if not marker:
        return
    Path(marker).touch()
    deadline = time.monotonic() + _CHECKPOINT_WAIT_S
    while time.monotonic() < deadline:
        time.sleep(0.05)  # SIGINT raises KeyboardInterrupt here; SIGKILL ends the process


def _metadata(raw: bytes) -> dict[str, str]:
    length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + length])
    meta = header.get("__metadata__") or {}
    return {str(k): str(v) for k, v in meta.items()}


def default_cache() -> VectorCache | None:
    if os.environ.get("STEER_NO_CACHE"):
        return None
    base = os.environ.get("STEER_CACHE_DIR")
    if base:
        return VectorCache(Path(base))
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return VectorCache(Path(xdg) / "recipe-engine" / "vectors")
