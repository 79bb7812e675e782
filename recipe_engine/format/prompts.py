"""Prompt lists: inline in the recipe, or in a file next to it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from recipe_engine.format.base import RecipeModel

__all__ = ["PromptFile", "PromptSource", "prompt_form"]


class PromptFile(RecipeModel):
    """Prompts read from a file, resolved relative to the recipe that names it."""

    file: str = Field(
        min_length=1,
        description="Path relative to this recipe: .txt (one prompt per line) or .jsonl.",
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


def prompt_form(value: Any) -> str | None:
    if isinstance(value, list):
        return "inline"
    if isinstance(value, (dict, PromptFile)):  # a dict when validating, the model when dumping
        return "file"
    if isinstance(value, str):
        return "single"
    return None


PromptSource = Annotated[
    Annotated[list[Annotated[str, Field(min_length=1)]], Tag("inline"), Field(min_length=1)]
    | Annotated[str, Tag("single"), Field(min_length=1)]
    | Annotated[PromptFile, Tag("file")],
    Discriminator(
        prompt_form,
        custom_error_type="prompts_type",
        custom_error_message="prompts must be a string, a list of strings, or {file: PATH}",
    ),
]
