"""YAML scalars follow YAML 1.2's core schema everywhere: recipes, fragments and `--set`.

The expected values are those of the YAML 1.2.2 spec, section 10.3.2 (tag resolution of the
core schema), written out by hand; `yaml11-scalar` warnings name the plain scalars a YAML 1.1
reader (PyYAML, and this engine before) reads as something else.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from recipe_engine.format.layers import resolve_layers
from recipe_engine.load.yaml_reader import parse_yaml_text, read_yaml_file
from recipe_engine.validate import validate_file
from tests.conftest import MINIMAL

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "recipe.schema.json"

# (plain scalar, its YAML 1.2 core value, whether a YAML 1.1 reader sees something else)
CASES: list[tuple[str, Any, bool]] = [
    ("1:3", "1:3", True),  # YAML 1.1: base-60 integer 63
    ("1:30:00", "1:30:00", True),
    ("on", "on", True),  # YAML 1.1: booleans
    ("off", "off", True),
    ("yes", "yes", True),
    ("no", "no", True),
    ("Yes", "Yes", True),
    ("y", "y", False),  # a boolean in the YAML 1.1 spec, but never to PyYAML or this engine
    ("n", "n", False),
    ("010", 10, True),  # YAML 1.1: octal 8
    ("0o17", 15, True),  # YAML 1.1: the string '0o17'
    ("0x1F", 31, False),
    ("1_000", "1_000", True),  # YAML 1.1: 1000
    ("true", True, False),
    ("True", True, False),
    ("FALSE", False, False),
    (".inf", math.inf, False),
    ("-.Inf", -math.inf, False),
    (".nan", math.nan, False),
    ("1e3", 1000.0, False),  # a number here before, too
    ("-2.5E-1", -0.25, False),
    ("~", None, False),
    ("null", None, False),
    ("nan", "nan", False),  # only `.nan` is NaN
    ("2024-01-01", "2024-01-01", False),  # no timestamps in the core schema
]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize(("text", "expected", "changed"), CASES)
def test_plain_scalar_follows_the_core_schema(text: str, expected: Any, changed: bool) -> None:
    parsed = parse_yaml_text(f"version: 1\nvalue: {text}\n", "r.yaml")
    assert _same(parsed.data["value"], expected)
    warnings = [(w.code, w.pointer, w.location) for w in parsed.warnings]
    if changed:
        assert len(warnings) == 1
        code, pointer, location = warnings[0]
        assert (code, pointer) == ("yaml11-scalar", "/value")
        assert location is not None and (location.line, location.column) == (2, 8)
    else:
        assert warnings == []


@pytest.mark.parametrize("text", ['"1:3"', "'yes'", '"010"', "!!str 0o17"])
def test_quoted_scalars_are_text_without_a_warning(text: str) -> None:
    parsed = parse_yaml_text(f"value: {text}\n", "r.yaml")
    assert isinstance(parsed.data["value"], str)
    assert parsed.warnings == [] or text.startswith("!!")


def _recipe(layers: str = "1:3") -> str:
    return MINIMAL + (
        "vectors:\n  v: {kind: random, seed: 010, norm: 1.0}\n"
        f"interventions:\n  - {{vector: v, op: add, layers: {layers}, strength: 1e3}}\n"
    )


def test_unquoted_layer_range_in_a_recipe_is_a_range(write) -> None:  # type: ignore[no-untyped-def]
    path = write("r.yaml", _recipe())
    result = validate_file(path)

    assert result.errors == []
    assert result.recipe is not None
    layers = result.recipe.interventions[0].layers
    assert layers == "1:3"
    assert resolve_layers(layers, 64) == [(1, 1.0), (2, 1.0)]  # not layer 63
    warned = {(d.code, d.pointer, d.location.line) for d in result.warnings if d.location}
    assert ("yaml11-scalar", "/interventions/0/layers", 10) in warned
    assert ("yaml11-scalar", "/vectors/v/seed", 8) in warned
    seed = result.document.data["vectors"]["v"]["seed"]  # type: ignore[union-attr]
    assert seed == 10
    [layer_warning] = [d for d in result.warnings if d.pointer == "/interventions/0/layers"]
    formatted = layer_warning.format()
    assert formatted.startswith(f"{layer_warning.location.file}:10:")  # type: ignore[union-attr]
    assert "63" in formatted and "[yaml11-scalar]" in formatted


def test_json_schema_accepts_an_unquoted_layer_range(write) -> None:  # type: ignore[no-untyped-def]
    """Editors validate with the exported JSON Schema and a YAML 1.2 reader: `1:3` is a range."""
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    data = read_yaml_file(write("r.yaml", _recipe()), "r.yaml").data
    jsonschema.validate(data, schema)
    data["interventions"][0]["layers"] = 63 * 1.5  # what would not fit
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)


def test_scalars_in_a_fragment_follow_the_core_schema(write) -> None:  # type: ignore[no-untyped-def]
    write("_frag.yaml", "interventions:\n  - {vector: v, op: add, layers: 1:3, strength: 1}\n")
    path = write(
        "r.yaml",
        "include: _frag.yaml\n" + MINIMAL + "vectors:\n  v: {kind: random, seed: 1, norm: 1.0}\n",
    )
    result = validate_file(path)

    assert result.errors == []
    assert result.recipe is not None and result.recipe.interventions[0].layers == "1:3"
    [warning] = result.warnings
    assert warning.code == "yaml11-scalar"
    assert warning.location is not None and warning.location.file.endswith("_frag.yaml")
    assert (warning.location.line, warning.location.column) == (2, 34)
    assert warning.include_chain and warning.include_chain[-1].endswith("r.yaml")


@pytest.mark.parametrize(("text", "expected", "changed"), CASES)
def test_set_values_follow_the_core_schema(write, text: str, expected: Any, changed: bool) -> None:  # type: ignore[no-untyped-def]
    path = write("r.yaml", _recipe(layers="0"))
    result = validate_file(path, overrides=[f"run.note={text}"])

    assert result.document is not None
    assert _same(result.document.data["run"]["note"], expected)
    warnings = [d for d in result.warnings if d.pointer == "/run/note"]
    assert len(warnings) == int(changed)
    for warning in warnings:
        assert warning.code == "yaml11-scalar"
        assert warning.format().startswith(f"command line (--set run.note={text}): /run/note: ")


def test_set_layer_range_is_a_range(write) -> None:  # type: ignore[no-untyped-def]
    path = write("r.yaml", _recipe(layers="0"))
    result = validate_file(path, overrides=["interventions.0.layers=1:3", "run.batch_size=010"])

    assert result.recipe is not None
    assert result.recipe.interventions[0].layers == "1:3"
    assert result.document is not None and result.document.data["run"]["batch_size"] == 10
