"""`run.prompts` with prompt groups: prompts that carry their own strength or interventions.

    run:
      prompts:
        - "A prompt steered as the recipe says"
        - {name: gentle, prompts: {file: data/topic.txt}, strength: 1.0}
        - {name: none, prompts: ["An unsteered prompt"], interventions: []}

Every group runs in the same batches as the others, each row with its own plan; a row's result
equals running its group alone. `strength` replaces the strength of every intervention the group
uses (layer weights still apply); `interventions` replaces the recipe's list for the group.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Discriminator, Field, Tag

from recipe_engine.format.base import RecipeModel
from recipe_engine.format.interventions import Intervention
from recipe_engine.format.prompts import ChatPrompt, PromptFile, PromptSource, prompt_form

__all__ = ["PromptGroup", "PromptPart", "RunPrompts", "prompt_parts"]


class PromptGroup(RecipeModel):
    name: str | None = Field(default=None, description="Label shown in reports.")
    prompts: PromptSource = Field(description="The group's prompts: a list, or {file: PATH}.")
    strength: float | None = Field(
        default=None,
        description="Replaces the strength of every intervention for these prompts.",
    )
    interventions: list[Intervention] | None = Field(
        default=None,
        description="Replaces the recipe's interventions for these prompts ([] leaves them "
        "unsteered).",
    )


def _run_prompt_form(value: Any) -> str | None:
    # One list form (strings and groups mixed), so that the JSON Schema's oneOf has exactly one
    # branch for any list.
    return "groups" if isinstance(value, list) else prompt_form(value)


def _item_form(value: Any) -> str:
    # A mapping with `messages` is a conversation, any other mapping a group, anything else must
    # be a prompt: one error per bad item, not one per branch of the union.
    if isinstance(value, ChatPrompt) or (isinstance(value, dict) and "messages" in value):
        return "chat"
    return "group" if isinstance(value, (dict, PromptGroup)) else "text"


RunPromptItem = Annotated[
    Annotated[str, Tag("text"), Field(min_length=1)]
    | Annotated[ChatPrompt, Tag("chat")]
    | Annotated[PromptGroup, Tag("group")],
    Discriminator(_item_form),
]

RunPrompts = Annotated[
    Annotated[str, Tag("single"), Field(min_length=1)]
    | Annotated[ChatPrompt, Tag("chat")]
    | Annotated[PromptFile, Tag("file")]
    | Annotated[list[RunPromptItem], Tag("groups"), Field(min_length=1)],
    Discriminator(
        _run_prompt_form,
        custom_error_type="prompts_type",
        custom_error_message="prompts must be a string, a list of prompts, conversations "
        "({messages: [...]}) and prompt groups ({prompts: ..., strength: ..., "
        "interventions: [...]}), {messages: [...]} or {file: PATH}",
    ),
]


@dataclass(frozen=True)
class PromptPart:
    """One run of consecutive prompts that share a plan: its source, where it is written, and
    its group (None: the recipe's own interventions)."""

    source: Any  # a PromptSource: a list, a string, a conversation or a PromptFile
    pointer: str
    group: PromptGroup | None = None
    index: int | None = None  # the group's place in run.prompts


def prompt_parts(prompts: Any, pointer: str = "/run/prompts") -> Iterator[PromptPart]:
    """run.prompts as parts, in order: one part unless it holds groups."""
    if not (isinstance(prompts, list) and any(isinstance(p, PromptGroup) for p in prompts)):
        yield PromptPart(prompts, pointer)
        return
    for index, item in enumerate(prompts):
        at = f"{pointer}/{index}"
        if isinstance(item, PromptGroup):
            yield PromptPart(item.prompts, at + "/prompts", item, index)
        else:
            yield PromptPart([item], at)
