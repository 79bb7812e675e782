"""Prompt files: one prompt per line (.txt) or JSON Lines (.jsonl), read with size limits.

Two limits keep a hostile or mistaken file from exhausting memory, and both are read from the
environment at each read, so any entry point (CLI, API, tests) honours them:

- ``STEER_MAX_PROMPT_FILE_BYTES`` (default 256 MiB, ``MAX_PROMPT_FILE_BYTES``): a prompt file
  (and a probe's data file) larger than this is refused before a byte of it is read.
- ``STEER_MAX_PROMPT_LINE_BYTES`` (default 1 MiB, ``MAX_PROMPT_LINE_BYTES``): one line (one
  prompt) longer than this is refused; it is read in bounded pieces, so a file that is a single
  enormous line never sits in memory whole.

Values are a number of bytes, optionally with a K, M or G suffix (powers of 1024):
``STEER_MAX_PROMPT_FILE_BYTES=2G steer run big-calibration.yaml``. Far above a real prompt set,
far below what would exhaust memory; raise them for the rare user with a huge calibration set.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from recipe_engine.diagnostics import closest
from recipe_engine.errors import UsageError

__all__ = [
    "CHAT_ROLES",
    "ENV_MAX_FILE_BYTES",
    "ENV_MAX_LINE_BYTES",
    "MAX_PROMPT_FILE_BYTES",
    "MAX_PROMPT_LINE_BYTES",
    "Conversation",
    "Prompt",
    "PromptFileError",
    "conversation",
    "iter_lines",
    "iter_numbered_prompts",
    "iter_prompts",
    "max_prompt_file_bytes",
    "max_prompt_line_bytes",
    "read_prompts",
]

MAX_PROMPT_FILE_BYTES = 256 << 20
# 1 MiB of text is ~250k tokens: past the context of nearly every model. A longer line is a file
# that is not one-prompt-per-line (minified JSON, a binary blob, a missing newline).
MAX_PROMPT_LINE_BYTES = 1 << 20
ENV_MAX_FILE_BYTES = "STEER_MAX_PROMPT_FILE_BYTES"
ENV_MAX_LINE_BYTES = "STEER_MAX_PROMPT_LINE_BYTES"

_SUFFIXES = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


CHAT_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Conversation:
    """A chat prompt: (role, content) messages, rendered later by the model's chat template
    (resolve/chat.py), which only the loaded tokenizer knows."""

    messages: tuple[tuple[str, str], ...]

    def as_json(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]


Prompt = str | Conversation  # one prompt as a recipe or a prompt file wrote it


class PromptFileError(ValueError):
    def __init__(self, message: str, line: int = 0) -> None:
        self.line = line
        super().__init__(f"line {line}: {message}" if line else message)


def _limit_from_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    text = raw.upper().removesuffix("IB").removesuffix("B")
    scale = _SUFFIXES.get(text[-1:], 1)
    digits = text[:-1] if scale != 1 else text
    try:
        value = int(digits) * scale
    except ValueError:
        value = 0
    if value <= 0:
        # A typo here must not silently mean "no limit" or "the default".
        raise UsageError(f"{name}={raw!r}: expected a positive number of bytes, e.g. 512M")
    return value


def max_prompt_file_bytes() -> int:
    """The size limit of a prompt file: $STEER_MAX_PROMPT_FILE_BYTES, else 256 MiB."""
    return _limit_from_env(ENV_MAX_FILE_BYTES, MAX_PROMPT_FILE_BYTES)


def max_prompt_line_bytes() -> int:
    """The size limit of one line of a prompt file: $STEER_MAX_PROMPT_LINE_BYTES, else 1 MiB."""
    return _limit_from_env(ENV_MAX_LINE_BYTES, MAX_PROMPT_LINE_BYTES)


def file_format(path: Path, declared: str | None) -> str:
    return declared or ("jsonl" if path.suffix.lower() == ".jsonl" else "lines")


def iter_lines(path: Path, max_bytes: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, raw line without its terminator), within both size limits."""
    cap = max_prompt_file_bytes() if max_bytes is None else max_bytes
    size = path.stat().st_size
    if size > cap:
        raise PromptFileError(
            f"file is {size} bytes, above the {cap}-byte limit for prompt files; split it, or "
            f"raise the limit with {ENV_MAX_FILE_BYTES}=BYTES if it is meant to be this large"
        )
    line_cap = max_prompt_line_bytes()
    with path.open("rb") as handle:
        number = 0
        while True:
            # +2: room for a "\r\n" after a line of exactly line_cap bytes.
            raw = handle.readline(line_cap + 2)
            if not raw:
                return
            number += 1
            body = raw.rstrip(b"\r\n")
            if len(body) > line_cap:
                raise PromptFileError(
                    f"line is longer than the {line_cap}-byte limit for one prompt; put one "
                    f"prompt per line, or raise the limit with {ENV_MAX_LINE_BYTES}=BYTES",
                    number,
                )
            yield number, body


def iter_prompts(
    path: Path,
    fmt: str,
    field: str = "text",
    limit: int | None = None,
    max_bytes: int | None = None,
) -> Iterator[Prompt]:
    """Stream prompts from `path` (never the whole file in memory at once). A JSONL object with
    a `messages` list is a chat conversation."""
    for _, prompt in iter_numbered_prompts(path, fmt, field, limit, max_bytes):
        yield prompt


def iter_numbered_prompts(
    path: Path,
    fmt: str,
    field: str = "text",
    limit: int | None = None,
    max_bytes: int | None = None,
) -> Iterator[tuple[int, Prompt]]:
    """(1-based line number, prompt) of each prompt of `path`, as iter_prompts reads them."""
    count = 0
    if limit is not None and limit <= 0:
        return
    for number, raw in iter_lines(path, max_bytes):
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise PromptFileError("not valid UTF-8; save the file as UTF-8", number) from None
        if "\x00" in line:
            raise PromptFileError(
                "binary data (NUL byte); a prompt file is UTF-8 text, one prompt per line", number
            )
        if not line.strip():
            continue
        prompt: Prompt = _jsonl_prompt(line, field, number) if fmt == "jsonl" else line
        count += 1
        yield number, prompt
        if limit is not None and count >= limit:
            return  # before reading (and judging) lines that will not be used


def conversation(messages: object, number: int = 0) -> Conversation:
    """A `messages` list ([{role, content}, ...]) -> a Conversation (PromptFileError if not)."""
    if not isinstance(messages, list) or not messages:
        raise PromptFileError("`messages` must be a non-empty list of {role, content}", number)
    pairs: list[tuple[str, str]] = []
    for index, message in enumerate(messages):
        if isinstance(message, dict):
            _known_keys(message, _MESSAGE_KEYS, f"messages[{index}]", number)
        role = message.get("role") if isinstance(message, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if role not in CHAT_ROLES or not isinstance(content, str):
            raise PromptFileError(
                f"messages[{index}] must be {{role: system|user|assistant, content: TEXT}}",
                number,
            )
        pairs.append((role, content))
    return Conversation(tuple(pairs))


_MESSAGE_KEYS = ("role", "content")


def _known_keys(value: dict[str, object], known: tuple[str, ...], what: str, number: int) -> None:
    """A conversation's keys are the recipe's `messages:` keys: a misspelt one (`contnet`,
    `nme`) would be dropped without a word, so it is refused as the recipe refuses it."""
    for key in value:
        if key not in known:
            match = closest(key, known)
            hint = f"; did you mean {match!r}?" if match else f" (allowed: {', '.join(known)})"
            raise PromptFileError(f"{what}: unknown key {key!r}{hint}", number)


def _jsonl_prompt(line: str, field: str, number: int) -> Prompt:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise PromptFileError(f"invalid JSON: {exc.msg}", number) from None
    if isinstance(value, dict) and "messages" in value:
        _known_keys(value, ("messages",), "a conversation", number)
        return conversation(value["messages"], number)
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
) -> list[Prompt]:
    prompts = list(iter_prompts(path, fmt, field, limit, max_bytes))
    if not prompts:
        raise PromptFileError("file holds no prompts")
    return prompts
