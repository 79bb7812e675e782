"""A trained vector's target file: JSONL, one example per line, read under the prompt files'
size limits (load/prompt_files.py).

    lm                 {"prompt": P, "completion": TEXT}
    preference, reps   {"prompt": P, "chosen": TEXT, "rejected": TEXT}

P is a string or {"messages": [...]} (a conversation the chat template renders, the same form
as a prompt file's). Validation reads the file with this module (torch-free) and training reads
the same rows, so every row that reaches training was checked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from recipe_engine.load.prompt_files import Prompt, PromptFileError, conversation, iter_lines

__all__ = ["TargetRow", "completion_fields", "read_targets"]


@dataclass(frozen=True)
class TargetRow:
    prompt: Prompt
    completions: tuple[str, ...]  # (completion,) for lm; (chosen, rejected) for pairs
    line: int


def completion_fields(objective: str) -> tuple[str, ...]:
    return ("completion",) if objective == "lm" else ("chosen", "rejected")


def _row(line: str, number: int, fields: tuple[str, ...]) -> TargetRow:
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        raise PromptFileError("invalid JSON", number) from None
    if not isinstance(value, dict):
        raise PromptFileError("expected a JSON object", number)
    raw = value.get("prompt")
    if isinstance(raw, dict) and "messages" in raw:
        prompt: Prompt = conversation(raw["messages"], number)
    elif isinstance(raw, str) and raw:
        prompt = raw
    else:
        raise PromptFileError(
            'missing field "prompt" (a non-empty string or {"messages": [...]})', number
        )
    texts: list[str] = []
    for name in fields:
        text = value.get(name)
        if not isinstance(text, str):
            raise PromptFileError(f"missing field {name!r} (a string)", number)
        if not text.strip():
            raise PromptFileError(f"field {name!r} is empty: there is nothing to learn", number)
        texts.append(text)
    return TargetRow(prompt, tuple(texts), number)


def read_targets(path: Path, objective: str, limit: int | None = None) -> Iterator[TargetRow]:
    """The file's examples, in order (PromptFileError naming the line of the first bad one)."""
    fields = completion_fields(objective)
    count = 0
    for number, raw in iter_lines(path):
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise PromptFileError("not valid UTF-8; save the file as UTF-8", number) from None
        if not line.strip():
            continue
        yield _row(line, number, fields)
        count += 1
        if limit is not None and count >= limit:
            return
