"""Generate the JSON Schema of recipe format v1 from the pydantic models.

`schemas/recipe.schema.json` is generated, never hand-edited: sorted keys, two-space indent,
one trailing newline, so it is byte-for-byte deterministic and diffs cleanly in review.
"""

from __future__ import annotations

import json
from typing import Any

from recipe_engine.format.recipe import Recipe

__all__ = ["SCHEMA_ID", "recipe_schema", "render_schema"]

SCHEMA_ID = "https://recipe-engine.dev/schemas/recipe.schema.json"


def recipe_schema() -> dict[str, Any]:
    schema = Recipe.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "Steering recipe (format v1)"
    return schema


def render_schema() -> str:
    return json.dumps(recipe_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
