"""Prompt lists: inline in the recipe, or in a file next to it. A prompt is a text, or a chat
conversation (`messages:`) that the model's own chat template renders (resolve/chat.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from recipe_engine.format.base import RecipeModel
from recipe_engine.load.prompt_files import Conversation

__all__ = ["ChatMessage", "ChatPrompt", "PromptFile", "PromptItem", "PromptSource", "prompt_form"]


class ChatMessage(RecipeModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatPrompt(RecipeModel):
    """A conversation. Rendered with the model's chat template: ending on a user (or system)
    turn, the template's generation prompt is added (the assistant's turn starts); ending on an
    assistant turn, that turn is continued (a prefill, e.g. `(` for a CAA answer letter)."""

    messages: list[ChatMessage] = Field(
        min_length=1, description="The turns, in order: {role: system|user|assistant, content}."
    )

    def conversation(self) -> Conversation:
        return Conversation(tuple((m.role, m.content) for m in self.messages))


class PromptFile(RecipeModel):
    """Prompts read from a file, resolved relative to the recipe that names it."""

    file: str = Field(
        min_length=1,
        description="Path relative to this recipe: .txt (one prompt per line) or .jsonl "
        '(a string, an object with a text field, or {"messages": [...]}: a conversation).',
    )
    format: Literal["lines", "jsonl"] | None = Field(
        default=None,
        description="lines: one prompt per non-empty line; jsonl: one JSON object (or string) "
        "per line. Default: from the extension (.jsonl -> jsonl, else lines).",
    )
    field: str = Field(
        default="text", min_length=1, description="For jsonl objects: the key holding the text."
    )
    limit: int | None = Field(
        default=None, ge=1, description="Use only the first N prompts of the file."
    )


def _item_form(value: Any) -> str | None:
    if isinstance(value, str):
        return "text"
    if isinstance(value, (dict, ChatPrompt)):
        return "chat"
    return None


PromptItem = Annotated[
    Annotated[str, Tag("text"), Field(min_length=1)] | Annotated[ChatPrompt, Tag("chat")],
    Discriminator(
        _item_form,
        custom_error_type="prompt_type",
        custom_error_message="a prompt must be a string or {messages: [{role, content}, ...]}",
    ),
]


def prompt_form(value: Any) -> str | None:
    if isinstance(value, list):
        return "inline"
    if (isinstance(value, dict) and "messages" in value) or isinstance(value, ChatPrompt):
        return "chat"
    if isinstance(value, (dict, PromptFile)):  # a dict when validating, the model when dumping
        return "file"
    if isinstance(value, str):
        return "single"
    return None


PromptSource = Annotated[
    Annotated[list[PromptItem], Tag("inline"), Field(min_length=1)]
    | Annotated[str, Tag("single"), Field(min_length=1)]
    | Annotated[ChatPrompt, Tag("chat")]
    | Annotated[PromptFile, Tag("file")],
    Discriminator(
        prompt_form,
        custom_error_type="prompts_type",
        custom_error_message="prompts must be a string, a list of prompts, {messages: [...]} "
        "or {file: PATH}",
    ),
]
