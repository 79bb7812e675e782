"""The committed JSON Schema is exactly what the engine generates."""

from __future__ import annotations

import json

import jsonschema
import pytest

from recipe_engine.format.schema_export import render_schema
from tests.conftest import REPO
from tests.helpers import run_steer

SCHEMA_FILE = REPO / "schemas" / "recipe.schema.json"


def test_committed_schema_is_current() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == render_schema(), (
        "schemas/recipe.schema.json is out of date: run `steer schema` and commit the result"
    )


def test_schema_is_deterministic_and_newline_terminated() -> None:
    first, second = render_schema(), render_schema()
    assert first == second
    assert first.endswith("}\n") and not first.endswith("\n\n")
    assert json.loads(first)["$schema"].endswith("2020-12/schema")


def test_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads(render_schema()))


@pytest.mark.parametrize(
    ("instance", "valid"),
    [
        (
            {
                "version": 1,
                "name": "x",
                "model": {"id": "builtin:tiny-random"},
                "run": {"prompts": ["hi"]},
            },
            True,
        ),
        (
            {
                "version": 1,
                "name": "x",
                "model": {"id": "m"},
                "run": {"prompts": ["hi"]},
                "bogus": 1,
            },
            False,
        ),
        (
            {
                "version": 1,
                "name": "x",
                "model": {"id": "m"},
                "run": {"prompts": ["hi"]},
                "interventions": [{"vector": "v", "layers": "2:x"}],
            },
            False,
        ),
        (
            {
                "version": 1,
                "name": "x",
                "model": {"id": "m"},
                "run": {"prompts": ["hi"]},
                "interventions": [{"vector": "v", "layers": {"3": 0.5}}],
            },
            True,
        ),
        (
            {
                "version": 1,
                "name": "x",
                "model": {"id": "m"},
                "run": {"prompts": ["hi"]},
                "vectors": {"v": {"kind": "nope"}},
            },
            False,
        ),
    ],
)
def test_schema_accepts_and_rejects_like_the_engine(instance: dict, valid: bool) -> None:
    validator = jsonschema.Draft202012Validator(json.loads(render_schema()))
    assert validator.is_valid(instance) is valid


def test_schema_check_command(tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "schema.json"
    assert run_steer("schema", "--check", "--output", str(target)).returncode == 1
    written = run_steer("schema", "--output", str(target))
    assert written.returncode == 0 and target.read_text() == render_schema()
    assert run_steer("schema", "--check", "--output", str(target)).returncode == 0
    target.write_text(render_schema().replace("Layers", "Lairs"))
    drift = run_steer("schema", "--check", "--output", str(target))
    assert drift.returncode == 1 and "steer schema --out" in drift.stdout
