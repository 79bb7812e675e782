"""Edge cases of validation found by review: each once slipped through."""

from __future__ import annotations

import json

from recipe_engine.validate import validate_file
from tests.conftest import MINIMAL
from tests.helpers import codes


def test_layers_equal_after_negative_indexing_are_duplicates(write) -> None:  # type: ignore[no-untyped-def]
    text = (
        MINIMAL
        + "vectors:\n  r: {kind: random}\ninterventions:\n  - {vector: r, layers: [1, -3]}\n"
    )
    path = write("dup.yaml", text)
    assert validate_file(path).errors == []  # without the model, -3 cannot be resolved
    assert codes(validate_file(path, check_model=True)) == ["duplicate-layer"]


def test_weight_map_duplicates_after_negative_indexing(write) -> None:  # type: ignore[no-untyped-def]
    text = MINIMAL + (
        "vectors:\n  r: {kind: random}\n"
        "interventions:\n  - {vector: r, layers: {0: 1.0, -4: 0.5}}\n"
    )
    assert codes(validate_file(write("dup.yaml", text), check_model=True)) == ["duplicate-layer"]


def test_version_true_is_not_version_one(write) -> None:  # type: ignore[no-untyped-def]
    path = write("v.yaml", MINIMAL.replace("version: 1", "version: true"))
    assert codes(validate_file(path)) == ["unsupported-version"]


def test_document_of_only_a_separator_is_empty(write) -> None:  # type: ignore[no-untyped-def]
    assert codes(validate_file(write("e.yaml", "---\n"))) == ["empty-file"]


def test_probe_label_must_be_an_integer(write) -> None:  # type: ignore[no-untyped-def]
    rows = [{"text": "a", "label": 1.0}, {"text": "b", "label": 0}]
    write("d.jsonl", "\n".join(json.dumps(r) for r in rows))
    text = MINIMAL + (
        "vectors:\n  p: {kind: probe, data: d.jsonl, layer: 1}\n"
        "interventions:\n  - {vector: p, layers: 1}\n"
    )
    assert codes(validate_file(write("p.yaml", text))) == ["probe-data-invalid"]


def test_range_past_the_last_layer_warns_with_check_model(write) -> None:  # type: ignore[no-untyped-def]
    text = MINIMAL + (
        "vectors:\n  r: {kind: random}\ninterventions:\n  - {vector: r, layers: '2:9'}\n"
    )
    result = validate_file(write("clamp.yaml", text), check_model=True)
    assert result.errors == []
    found = [(d.code, d.severity) for d in result.diagnostics]
    assert found == [("layer-range-clamped", "warning")]
    assert "[2, 3]" in result.diagnostics[0].message
