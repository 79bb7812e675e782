"""Where a vector's prompts come from, streamed, and a hash of that data for cache keys."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from recipe_engine.format.prompts import PromptFile
from recipe_engine.load.hashing import file_sha256
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.load.paths import resolve_reference
from recipe_engine.load.prompt_files import file_format, iter_prompts, read_prompts

__all__ = ["PromptSourceRef", "file_sha256", "resolve_prompts"]  # file_sha256: re-exported


class PromptSourceRef:
    """A recipe's prompt source (inline or a file), resolved relative to the file that wrote it."""

    def __init__(self, source: Any, doc: LoadedDocument | None, pointer: str, base: Path) -> None:
        self.source = source
        self.path: Path | None = None
        if isinstance(source, PromptFile):
            folder = doc.base_dir(pointer) if doc is not None else base
            self.path = resolve_reference(source.file, folder)

    def __iter__(self) -> Iterator[str]:
        if self.path is None:
            yield from ([self.source] if isinstance(self.source, str) else self.source)
            return
        spec = self.source
        fmt = file_format(self.path, spec.format)
        yield from iter_prompts(self.path, fmt, spec.field, spec.limit)

    def to_list(self) -> list[str]:
        if self.path is None:
            return list(self)
        spec = self.source
        return read_prompts(self.path, file_format(self.path, spec.format), spec.field, spec.limit)

    def sha256(self) -> str:
        """Identifies the data, not its spelling: inline text, or file bytes + how it is read."""
        if self.path is None:
            items = [self.source] if isinstance(self.source, str) else list(self.source)
            return hashlib.sha256(json.dumps(items).encode("utf-8")).hexdigest()
        spec = self.source
        reading = json.dumps([spec.format, spec.field, spec.limit, self.path.suffix.lower()])
        return hashlib.sha256((file_sha256(self.path) + reading).encode("utf-8")).hexdigest()


def resolve_prompts(source: Any, doc: LoadedDocument | None, pointer: str, base: Path) -> list[str]:
    """Every prompt of a validated prompt source (a list, or {file: PATH}), read into memory."""
    return PromptSourceRef(source, doc, pointer, base).to_list()
