"""Positions that need a prompt's text, checked against the prompts validation can see.

`{after: TEXT}` steers (or reads) the tokens after TEXT: an inline text prompt without TEXT
would fail the run (or, written inline, is simply a typo). An inline conversation is rendered
by the model's chat template, whose markup may hold TEXT: a conversation none of whose messages
holds it is a warning, and the run checks the rendered text (execute/marker_check.py). Prompt
files are read by the run.

A vector read at a role (`position: user`, `system`, `assistant`) needs conversations: on plain
text (inline strings, a one-prompt-per-line file, a probe's {"text", "label"} data) there is no
turn and extraction fails on its first prompt.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from recipe_engine.diagnostics import Diagnostic
from recipe_engine.format.interventions import Intervention
from recipe_engine.format.positions import ROLE_POSITIONS, AfterMarker
from recipe_engine.format.prompt_groups import prompt_parts
from recipe_engine.format.prompts import ChatPrompt, PromptFile
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.vectors import ProbeVector
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.load.prompt_files import file_format
from recipe_engine.load.source_map import join_pointer

__all__ = ["check_prompt_texts", "inline_prompts", "interventions_of_parts"]


def inline_prompts(source: Any, pointer: str) -> Iterator[tuple[str, Any]]:
    """(pointer, prompt) of each prompt written in the recipe (none for a file)."""
    if isinstance(source, list):
        for index, item in enumerate(source):
            yield f"{pointer}/{index}", item
    elif isinstance(source, (str, ChatPrompt)):
        yield pointer, source


def interventions_of_parts(recipe: Recipe) -> Iterator[tuple[Any, str, str, Intervention]]:
    """(prompt source, its pointer, intervention pointer, intervention) for every intervention
    that acts on each part of run.prompts: a group's own, else the recipe's."""
    for part in prompt_parts(recipe.run.prompts):
        if part.group is not None and part.group.interventions is not None:
            at = f"/run/prompts/{part.index}/interventions"
            items = part.group.interventions
        else:
            at, items = "/interventions", recipe.interventions
        for k, item in enumerate(items):
            yield part.source, part.pointer, f"{at}/{k}", item


def _where(doc: LoadedDocument, pointer: str) -> str:
    found = doc.locate(pointer)
    return f"{pointer} ({found.file}:{found.line})" if found and found.line else pointer


def _marker(
    doc: LoadedDocument, marker: AfterMarker, source: Any, pointer: str, user: str
) -> Iterator[Diagnostic]:
    """`user`: who steers or reads after the marker, e.g. `/interventions/0/positions (r:7)`."""
    for at, prompt in inline_prompts(source, pointer):
        if isinstance(prompt, str) and marker.after not in prompt:
            yield doc.diagnostic(
                "marker-not-found",
                f"this prompt does not contain {marker.after!r}, the text whose following "
                f"tokens {user} selects ({{after: ...}}); add it to the prompt or fix the marker",
                at,
            )
        elif isinstance(prompt, ChatPrompt) and not any(
            marker.after in m.content for m in prompt.messages
        ):
            yield doc.diagnostic(
                "marker-not-in-messages",
                f"no message of this conversation contains {marker.after!r}, the text whose "
                f"following tokens {user} selects ({{after: ...}}); only the chat template's "
                "markup could hold it (the run stops if the rendered prompt does not)",
                at + "/messages",
                severity="warning",
            )


def _plain_text(source: Any, pointer: str) -> str | None:
    """Where a prompt source is plain text (no turns): its pointer, else None. A JSONL file may
    hold either, so only a one-prompt-per-line file counts."""
    if isinstance(source, PromptFile):
        lines = file_format(Path(source.file), source.format) == "lines"
        return pointer + "/file" if lines else None
    for at, prompt in inline_prompts(source, pointer):
        if isinstance(prompt, str):
            return at
    return None


def _vector_sources(spec: Any, at: str) -> list[tuple[Any, str]]:
    found = []
    for field in ("positive", "negative", "prompts", "prompt"):
        value = getattr(spec, field, None)
        if value is not None:
            found.append((value, f"{at}/{field}"))
    return found


def check_prompt_texts(recipe: Recipe, doc: LoadedDocument) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    for source, pointer, at, item in interventions_of_parts(recipe):
        if isinstance(item.positions, AfterMarker):
            user = _where(doc, at + "/positions")
            found += _marker(doc, item.positions, source, pointer, user)
    for name, spec in recipe.vectors.items():
        position = getattr(spec, "position", None)
        at = join_pointer("/vectors", name)
        if isinstance(position, AfterMarker):
            for source, pointer in _vector_sources(spec, at):
                found += _marker(doc, position, source, pointer, _where(doc, at + "/position"))
        if position not in ROLE_POSITIONS:
            continue
        if isinstance(spec, ProbeVector):
            plain: str | None = at + "/data"  # {"text": ..., "label": ...}: always plain text
        else:
            plain = next(
                (p for s, q in _vector_sources(spec, at) if (p := _plain_text(s, q))), None
            )
        if plain is not None:
            found.append(
                doc.diagnostic(
                    "position-needs-chat",
                    f"position: {position} reads the tokens of {position} turns, but the "
                    f"prompts at {plain} are plain text (no turns), so no token is read and "
                    "the build fails; write them as conversations ({messages: [...]} inline, or "
                    '{"messages": [...]} lines of a .jsonl file), or read position: mean',
                    at + "/position",
                )
            )
    return found
