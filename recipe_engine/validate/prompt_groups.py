"""Checks of prompt groups (`run.prompts` items with `name`, `strength`, `interventions`) that
the schema cannot make: a strength nothing uses, and two groups with one name (issue 24 item 7:
both validated silently; the name is what the report's per-group rows are keyed by)."""

from __future__ import annotations

from collections.abc import Iterator

from recipe_engine.diagnostics import Diagnostic
from recipe_engine.format.prompt_groups import prompt_parts
from recipe_engine.format.recipe import Recipe
from recipe_engine.load.includes import LoadedDocument

__all__ = ["check_prompt_groups"]


def check_prompt_groups(recipe: Recipe, doc: LoadedDocument) -> list[Diagnostic]:
    return list(_check(recipe, doc))


def _check(recipe: Recipe, doc: LoadedDocument) -> Iterator[Diagnostic]:
    names: dict[str, int] = {}
    for part in prompt_parts(recipe.run.prompts):
        group = part.group
        if group is None:
            continue
        at = f"/run/prompts/{part.index}"
        items = recipe.interventions if group.interventions is None else group.interventions
        if group.strength is not None and not items:
            whose = (
                "the group's `interventions: []`"
                if group.interventions is not None
                else ("the recipe, which has no interventions")
            )
            yield doc.diagnostic(
                "group-strength-unused",
                f"strength {group.strength:g} replaces the strength of the interventions the "
                f"group uses, but it uses none ({whose}): remove `strength`, or give the "
                "group interventions",
                at + "/strength",
            )
        if group.name is not None:
            if group.name in names:
                yield doc.diagnostic(
                    "group-name-duplicate",
                    f"group name {group.name!r} is already the name of run.prompts item "
                    f"{names[group.name]}; the report keys each group's rows by its name: give "
                    "each group its own",
                    at + "/name",
                )
            else:
                names[group.name] = part.index if part.index is not None else -1
