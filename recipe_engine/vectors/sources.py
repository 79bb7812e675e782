"""Where a vector's prompts come from, streamed, and a hash of that data for cache keys.

Chat prompts (`messages:` inline, or `{"messages": [...]}` lines of a JSONL file) are rendered
with the model's chat template when a tokenizer is given (resolve/chat.py); a model without a
template is an error at the recipe line that wrote them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from recipe_engine.errors import RecipeError
from recipe_engine.format.prompts import ChatPrompt, PromptFile
from recipe_engine.load.hashing import file_sha256
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.load.paths import resolve_reference
from recipe_engine.load.prompt_files import (
    Conversation,
    Prompt,
    PromptFileError,
    file_format,
    iter_prompts,
)
from recipe_engine.resolve.chat import ChatTemplateError, render_conversation

__all__ = ["PromptSourceRef", "file_sha256", "resolve_prompts"]  # file_sha256: re-exported


def _as_prompt(item: Any) -> Prompt:
    return item.conversation() if isinstance(item, ChatPrompt) else item


class PromptSourceRef:
    """A recipe's prompt source (inline or a file), resolved relative to the file that wrote it.

    Iterating yields texts: a conversation is rendered with `tokenizer`'s chat template (then a
    resolve.chat.ChatText), or refused when no tokenizer was given.
    """

    def __init__(
        self,
        source: Any,
        doc: LoadedDocument | None,
        pointer: str,
        base: Path,
        tokenizer: Any = None,
    ) -> None:
        self.source = source
        self.doc = doc
        self.pointer = pointer
        self.tokenizer = tokenizer
        self.path: Path | None = None
        if isinstance(source, PromptFile):
            folder = doc.base_dir(pointer) if doc is not None else base
            self.path = resolve_reference(source.file, folder)

    def raw(self) -> Iterator[tuple[int, Prompt]]:
        """(index, prompt as written): texts and unrendered conversations."""
        if self.path is None:
            items = self.source if isinstance(self.source, list) else [self.source]
            yield from enumerate(_as_prompt(item) for item in items)
            return
        spec = self.source
        fmt = file_format(self.path, spec.format)
        yield from enumerate(iter_prompts(self.path, fmt, spec.field, spec.limit))

    def __iter__(self) -> Iterator[str]:
        for index, prompt in self.raw():
            yield prompt if isinstance(prompt, str) else self.render(index, prompt)

    def render(self, index: int, conversation: Conversation) -> str:
        if self.path is not None:
            where, what = self.pointer + "/file", f"{self.source.file}: prompt {index + 1}: "
        elif isinstance(self.source, list):
            where, what = f"{self.pointer}/{index}/messages", ""
        else:
            where, what = f"{self.pointer}/messages", ""
        try:
            if self.tokenizer is None:
                raise ChatTemplateError("chat prompts are rendered only with the model loaded")
            return render_conversation(self.tokenizer, conversation)
        except ChatTemplateError as exc:
            message = what + str(exc)
            if self.doc is None:
                from recipe_engine.diagnostics import Diagnostic

                raise RecipeError([Diagnostic("chat-template", message, where)]) from None
            raise RecipeError([self.doc.diagnostic("chat-template", message, where)]) from None

    def to_list(self) -> list[str]:
        prompts = list(self)
        if not prompts:  # inline sources are never empty (validation); a file may be
            raise PromptFileError("file holds no prompts")
        return prompts

    def _template(self) -> str:
        """The chat template, when this source holds conversations: the same conversation
        rendered by another template is other data (the model's identity does not cover the
        tokenizer's files). Text prompts keep the key they always had."""
        template = getattr(self.tokenizer, "chat_template", None)
        if not isinstance(template, str):
            return ""
        if self.path is not None and file_format(self.path, self.source.format) != "jsonl":
            return ""  # one text per line: never a conversation
        chats = any(isinstance(prompt, Conversation) for _, prompt in self.raw())
        return hashlib.sha256(template.encode("utf-8")).hexdigest() if chats else ""

    def sha256(self) -> str:
        """Identifies the data, not its spelling: inline text, or file bytes + how it is read
        (+ the chat template that renders its conversations, if any)."""
        if self.path is None:
            items = [p if isinstance(p, str) else p.as_json() for _, p in self.raw()]
            text = json.dumps(items) + self._template()
            return hashlib.sha256(text.encode("utf-8")).hexdigest()
        spec = self.source
        reading = json.dumps([spec.format, spec.field, spec.limit, self.path.suffix.lower()])
        text = file_sha256(self.path) + reading + self._template()
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def resolve_prompts(
    source: Any, doc: LoadedDocument | None, pointer: str, base: Path, tokenizer: Any = None
) -> list[str]:
    """Every prompt of a validated prompt source (a list, or {file: PATH}), read into memory;
    conversations rendered with `tokenizer`'s chat template."""
    return PromptSourceRef(source, doc, pointer, base, tokenizer).to_list()
