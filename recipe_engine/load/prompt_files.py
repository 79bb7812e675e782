"""Prompt files: one prompt per line (.txt) or JSON Lines (.jsonl), read with a size limit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

__all__ = ["MAX_PROMPT_FILE_BYTES", "PromptFileError", "iter_prompts", "read_prompts"]

# Far above a real prompt set, far below what would exhaust memory; configurable through the
# environment for the rare user with a huge calibration set.
MAX_PROMPT_FILE_BYTES = 256 << 20


class PromptFileError(ValueError):
    def __init__(self, message: str, line: int = 0) -> None:
        self.line = line
        super().__init__(f"line {line}: {message}" if line else message)


def file_format(path: Path, declared: str | None) -> str:
    return declared or ("jsonl" if path.suffix.lower() == ".jsonl" else "lines")


def iter_prompts(
    path: Path,
    fmt: str,
    field: str = "text",
    limit: int | None = None,
    max_bytes: int | None = None,
) -> Iterator[str]:
    """Stream prompts from `path` (never the whole file in memory at once)."""
    cap = MAX_PROMPT_FILE_BYTES if max_bytes is None else max_bytes
    size = path.stat().st_size
    if size > cap:
        raise PromptFileError(f"file is {size} bytes, above the {cap}-byte limit")
    count = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if limit is not None and count >= limit:
                return
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                raise PromptFileError("not valid UTF-8", number) from None
            if "\x00" in line:
                raise PromptFileError("binary data (NUL byte)", number)
            if not line.strip():
                continue
            if fmt == "jsonl":
                line = _jsonl_text(line, field, number)
            count += 1
            yield line


def _jsonl_text(line: str, field: str, number: int) -> str:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise PromptFileError(f"invalid JSON: {exc.msg}", number) from None
    if isinstance(value, dict):
        value = value.get(field)
        if not isinstance(value, str):
            raise PromptFileError(f"object has no string field {field!r}", number)
    if not isinstance(value, str) or not value:
        raise PromptFileError("expected a non-empty string or an object with a text field", number)
    return value


def read_prompts(
    path: Path,
    fmt: str,
    field: str = "text",
    limit: int | None = None,
    max_bytes: int | None = None,
) -> list[str]:
    prompts = list(iter_prompts(path, fmt, field, limit, max_bytes))
    if not prompts:
        raise PromptFileError("file holds no prompts")
    return prompts
