"""File content hashes, cached by (path, size, mtime) so that checking a lock does not re-read a
model's gigabytes on every run: a file whose size and modification time are unchanged is taken
to have the hash it had (as make and git's index do). Location: $STEER_HASH_CACHE, else
$XDG_CACHE_HOME/recipe-engine/file-hashes.json."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from recipe_engine.atomic import write_text_atomic
from recipe_engine.load.hashing import file_sha256

__all__ = ["HashCache", "default_hash_cache", "tensor_hashes"]


class HashCache:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, list[object]] | None = None
        self._dirty = False

    def _load(self) -> dict[str, list[object]]:
        if self._entries is None:
            self._entries = {}
            if self.path is not None and self.path.is_file():
                try:
                    data = json.loads(self.path.read_text(encoding="utf-8"))
                    self._entries = data if isinstance(data, dict) else {}
                except (OSError, ValueError):
                    self._entries = {}  # a broken cache is only slower, never wrong
        return self._entries

    def sha256(self, path: Path) -> str:
        stat = path.stat()
        key = str(path.resolve())
        with self._lock:
            entries = self._load()
            known = entries.get(key)
            if (
                isinstance(known, list)
                and len(known) == 3
                and known[:2] == [stat.st_size, stat.st_mtime_ns]
            ):
                return str(known[2])
        digest = file_sha256(path)
        with self._lock:
            self._load()[key] = [stat.st_size, stat.st_mtime_ns, digest]
            self._dirty = True
        return digest

    def save(self) -> None:
        with self._lock:
            if not self._dirty or self.path is None or self._entries is None:
                return
            try:
                write_text_atomic(self.path, json.dumps(self._entries, sort_keys=True) + "\n")
            except OSError:
                return  # a read-only cache folder: the hashes are recomputed next time
            self._dirty = False


def default_hash_cache() -> HashCache:
    if os.environ.get("STEER_NO_CACHE"):
        return HashCache(None)
    explicit = os.environ.get("STEER_HASH_CACHE")
    if explicit:
        return HashCache(Path(explicit))
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return HashCache(Path(xdg) / "recipe-engine" / "file-hashes.json")


def tensor_hashes(path: Path) -> dict[str, str]:
    """sha256 of each tensor's raw bytes (dtype, shape and values) in a safetensors file, read
    from its header's offsets: a vector's values, whatever metadata the file also carries."""
    import hashlib

    with path.open("rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(size))
        hashes = {}
        for name, entry in sorted(header.items()):
            if name == "__metadata__" or not isinstance(entry, dict):
                continue
            start, end = entry["data_offsets"]
            handle.seek(8 + size + start)
            digest = hashlib.sha256(f"{entry['dtype']}{entry['shape']}".encode())
            digest.update(handle.read(end - start))
            hashes[name] = digest.hexdigest()
    return hashes
