"""Before the first trace: every prompt an `{after: TEXT}` intervention acts on contains TEXT.

Validation checks the inline text prompts (validate/prompt_texts.py); prompt files and rendered
conversations (the chat template's markup may hold the marker) are only known here, with the
tokenizer. A prompt without the marker is bad input to the recipe, so it is a diagnostic at the
recipe line (exit 1) naming the intervention, the prompt's place in run.prompts and, for a file,
its file and line; mid-trace it would be an error about "prompt 1 of its batch".
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from recipe_engine.errors import RecipeError
from recipe_engine.format.positions import AfterMarker
from recipe_engine.format.prompts import PromptFile
from recipe_engine.format.recipe import Recipe
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.load.prompt_files import Conversation, file_format, iter_numbered_prompts
from recipe_engine.validate.prompt_texts import inline_prompts, interventions_of_parts
from recipe_engine.vectors.sources import PromptSourceRef

__all__ = ["check_markers"]


def _numbered(ref: PromptSourceRef, doc: LoadedDocument) -> Iterator[tuple[int, str, str]]:
    """(index in the source, where it is written, rendered text) of each prompt of `ref`."""
    source = ref.source
    if isinstance(source, PromptFile) and ref.path is not None:
        fmt = file_format(ref.path, source.format)
        prompts = iter_numbered_prompts(ref.path, fmt, source.field, source.limit)
        for index, (line, prompt) in enumerate(prompts):
            text = ref.render(index, prompt) if isinstance(prompt, Conversation) else prompt
            yield index, f"{source.file}:{line}", text
        return
    written = inline_prompts(source, ref.pointer)
    for index, ((pointer, _), text) in enumerate(zip(written, ref, strict=True)):
        found = doc.locate(pointer)
        where = f"{found.file}:{found.line}" if found and found.line else pointer
        yield index, where, text


def check_markers(recipe: Recipe, doc: LoadedDocument, tokenizer: Any) -> None:
    """RecipeError at the first prompt (per intervention) that lacks its marker."""
    problems = []
    refs: dict[str, PromptSourceRef] = {}
    for source, pointer, at, item in interventions_of_parts(recipe):
        marker = item.positions
        if not isinstance(marker, AfterMarker):
            continue
        ref = refs.setdefault(
            pointer, PromptSourceRef(source, doc, pointer, Path(doc.path).parent, tokenizer)
        )
        for index, where, text in _numbered(ref, doc):
            if marker.after in text:
                continue
            place = pointer + "/file" if isinstance(source, PromptFile) else pointer
            written = doc.locate(at + "/positions")
            line = f" ({written.file}:{written.line})" if written and written.line else ""
            problems.append(
                doc.diagnostic(
                    "marker-not-found",
                    f"{at}/positions{line} steers the tokens after {marker.after!r}, but prompt "
                    f"{index + 1} of {pointer} ({where}) does not contain that text as the model "
                    f"reads it: {text[:80]!r}; add it to the prompt or fix the marker",
                    place if isinstance(source, PromptFile) else _item(source, pointer, index),
                )
            )
            break  # one per intervention and source: the rest likely share the cause
    if problems:
        raise RecipeError(problems)


def _item(source: Any, pointer: str, index: int) -> str:
    return f"{pointer}/{index}" if isinstance(source, list) else pointer
