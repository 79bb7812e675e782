"""What validation reports when the schema phase fails (issue 19 item 8): unknown keys alone
hide nothing else; other schema errors skip the later phases, and the output says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recipe_engine.cli.main import main
from recipe_engine.validate import validate_file
from tests.helpers import codes

# The README's example of "all diagnostics at once": a misspelled key and a layer the 4-layer
# builtin model does not have.
TYPO_AND_LAYER = """\
version: 1
name: x
model: {id: builtin:tiny-sentiment}
vectors:
  v: {kind: random, seed: 0, norm: 1, dim: 192}
interventions:
  - vector: v
    op: add
    layers: [0, 14]
    strenght: 2
run:
  prompts: ["hello"]
"""


def test_an_unknown_key_does_not_hide_the_other_errors(write) -> None:  # type: ignore[no-untyped-def]
    result = validate_file(write("x.yaml", TYPO_AND_LAYER))
    located = sorted((d.code, d.location.line, d.pointer) for d in result.errors if d.location)
    assert located == [
        ("layer-range", 9, "/interventions/0/layers/1"),
        ("unknown-key", 10, "/interventions/0/strenght"),
    ]
    assert result.note is None and result.recipe is None


def test_unknown_keys_and_a_reference_error(write) -> None:  # type: ignore[no-untyped-def]
    text = TYPO_AND_LAYER.replace("layers: [0, 14]", "layers: 0").replace("vector: v", "vector: w")
    assert sorted(codes(validate_file(write("x.yaml", text)))) == [
        "undefined-vector",
        "unknown-key",
        "unused-vector",
    ]


def test_other_schema_errors_say_the_later_checks_were_skipped(
    write, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    text = TYPO_AND_LAYER.replace("name: x", "name: [1]")
    path: Path = write("x.yaml", text)
    result = validate_file(path)
    assert sorted(codes(result)) == ["unknown-key", "wrong-type"]  # no layer-range: skipped
    assert result.note is not None and "2 schema errors" in result.note

    assert main(["validate", str(path)]) == 1
    captured = capsys.readouterr()
    assert (
        f"steer: note: {result.display}: fix the 2 schema errors above first: semantic, "
        "reference and file checks run once the schema passes"
    ) in captured.err.splitlines()
    assert "steer: note" not in captured.out  # stdout: one diagnostic a line, then the summary
    assert main(["validate", str(path), "--format", "json"]) == 1
    entry = json.loads(capsys.readouterr().out)["files"][0]
    assert entry["note"] == result.note


def test_a_valid_file_has_no_note(write) -> None:  # type: ignore[no-untyped-def]
    text = TYPO_AND_LAYER.replace("layers: [0, 14]", "layers: 0").replace("strenght", "strength")
    result = validate_file(write("x.yaml", text))
    assert result.ok and result.note is None
