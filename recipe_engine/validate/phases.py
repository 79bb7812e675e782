"""How far validation gets when the schema phase fails, so that as much as can be reported is.

Validation has phases: the schema (types, unknown keys, choices), then, on a well-formed
recipe, semantics, references and files, then the model's shape (layers, heads, widths). The
later phases need a typed Recipe, which a document with schema errors does not give. One common
case still can: when every schema error is an unknown key (a typo such as `strenght`), the
document without those keys is checked as usual, so the typo hides nothing else. Otherwise the
later phases are skipped and the result says so (`skipped_note`).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from recipe_engine.diagnostics import Diagnostic
from recipe_engine.format.recipe import Recipe
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.validate.schema_errors import validate_schema

__all__ = ["schema_without_unknown_keys", "skipped_note"]


def _tokens(pointer: str) -> list[str]:
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]


def _remove(data: Any, tokens: list[str]) -> bool:
    """Delete the mapping key at `tokens` from `data`; False if the path is not there."""
    node = data
    for token in tokens[:-1]:
        if isinstance(node, dict):
            keys = [k for k in node if str(k) == token]
            if not keys:
                return False
            node = node[keys[0]]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return False
    if not isinstance(node, dict):
        return False
    keys = [k for k in node if str(k) == tokens[-1]]
    for key in keys:
        del node[key]
    return bool(keys)


def schema_without_unknown_keys(
    doc: LoadedDocument, diagnostics: list[Diagnostic]
) -> tuple[Recipe, LoadedDocument] | None:
    """The recipe and document as they would be without the unknown keys, when those are the
    only schema errors and removing them leaves a well-formed recipe; else None."""
    if not diagnostics or any(d.code != "unknown-key" for d in diagnostics):
        return None
    data = copy.deepcopy(doc.data)
    for diag in diagnostics:
        if not diag.pointer or not _remove(data, _tokens(diag.pointer)):
            return None
    stripped = dataclasses.replace(doc, data=data)
    recipe, again = validate_schema(stripped)
    return (recipe, stripped) if recipe is not None and not again else None


def skipped_note(schema_errors: int) -> str:
    noun = "error" if schema_errors == 1 else "errors"
    return (
        f"fix the {schema_errors} schema {noun} above first: semantic, reference and file "
        "checks run once the schema passes"
    )
