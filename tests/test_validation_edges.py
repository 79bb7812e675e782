"""Edge cases of validation found by review: each once slipped through."""

from __future__ import annotations

import json
import os

import pytest

from recipe_engine.validate import validate_file
from tests.conftest import MINIMAL
from tests.helpers import codes


def test_layers_equal_after_negative_indexing_are_duplicates(write) -> None:  # type: ignore[no-untyped-def]
    text = (
        MINIMAL
        + "vectors:\n  r: {kind: random}\ninterventions:\n  - {vector: r, layers: [1, -3]}\n"
    )
    path = write("dup.yaml", text)
    # MINIMAL's model is a builtin, whose shape every validation knows (issue 19 item 8)
    assert codes(validate_file(path)) == ["duplicate-layer"]
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


# -- found by fuzzing (tests/test_fuzz_recipes.py) -----------------------------------------------


def _prompts_from(reference: str) -> str:
    return MINIMAL.replace('prompts: ["hello"]', f"prompts: {{file: {reference}}}")


@pytest.mark.parametrize(
    "reference",
    ['"p\\0.txt"', "p" * 300 + ".txt", "loop.txt", ("d" * 200 + "/") * 30 + "p.txt"],
)
@pytest.mark.parametrize("allow_outside_root", [False, True])
def test_impossible_prompt_file_path_is_not_found(
    write, repo_dir, reference: str, allow_outside_root: bool
) -> None:  # type: ignore[no-untyped-def]
    (repo_dir / "loop.txt").symlink_to("loop.txt")
    path = write("r.yaml", _prompts_from(reference))
    result = validate_file(path, allow_outside_root=allow_outside_root)
    assert codes(result) == ["file-not-found"]
    assert result.diagnostics[0].location.line == 6  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "body",
    ["9" * 5000 + "\n", "[" * 100_000 + "\n"],  # int() digit limit; recursion limit
)
def test_jsonl_that_json_cannot_read_is_invalid(write, body: str) -> None:  # type: ignore[no-untyped-def]
    write("p.jsonl", body)
    assert codes(validate_file(write("r.yaml", _prompts_from("p.jsonl")))) == [
        "prompt-file-invalid"
    ]


@pytest.mark.parametrize(
    "body",
    ['{"text": "a", "label": ' + "1" * 5000 + "}\n", "[" * 100_000 + "\n"],
)
def test_probe_data_that_json_cannot_read_is_invalid(write, body: str) -> None:  # type: ignore[no-untyped-def]
    write("d.jsonl", body)
    text = MINIMAL + (
        "vectors:\n  p: {kind: probe, data: d.jsonl, layer: 1}\n"
        "interventions:\n  - {vector: p, layers: 1}\n"
    )
    assert codes(validate_file(write("p.yaml", text))) == ["probe-data-invalid"]


@pytest.mark.parametrize(
    "config",
    [
        '{"n_layer": ' + "9" * 5000 + ', "n_embd": 64, "n_head": 4}',
        "[" * 100_000,
    ],
)
@pytest.mark.parametrize("check_model", [False, True])
def test_local_model_config_json_cannot_read(write, config: str, check_model: bool) -> None:  # type: ignore[no-untyped-def]
    write("m/config.json", config)
    path = write("r.yaml", MINIMAL.replace("builtin:tiny-random", "./m"))
    result = validate_file(path, check_model=check_model)  # no crash, with or without
    assert codes(result) == (["model-config-invalid"] if check_model else [])


@pytest.mark.parametrize("heads", [0, -4])
def test_local_model_config_with_zero_heads(write, heads: int) -> None:  # type: ignore[no-untyped-def]
    write("m/config.json", json.dumps({"n_layer": 4, "n_embd": 64, "n_head": heads}))
    path = write("r.yaml", MINIMAL.replace("builtin:tiny-random", "./m"))
    assert codes(validate_file(path, check_model=True)) == ["model-config-unknown"]


@pytest.mark.parametrize(
    ("extra", "shown"),
    [
        # semantic checks: invalid-name, unused-vector, and undefined-vector's list of names
        ('vectors: {"a\\nb": {kind: random}, "c\\u2028d": {kind: random}}\n'
         "interventions: [{vector: e, layers: 0}]\n", ["/vectors/a\\nb:", "c\\u2028d"]),
        # schema: the pointer of an unknown key
        ('interventions: [{layers: 0, "\\r\\x85": 1}]\n', ["/interventions/0/\\r\\x85:"]),
    ],
)  # fmt: skip
def test_diagnostics_stay_on_one_line(write, extra: str, shown: list[str]) -> None:  # type: ignore[no-untyped-def]
    # keys and names are echoed into pointers and messages: "a\nb" would split the line
    result = validate_file(write("r.yaml", MINIMAL + extra))
    assert result.errors
    lines = [diag.format() for diag in result.diagnostics]
    for line in lines:
        assert len(line.splitlines()) == 1, line
    for escaped in shown:  # escaped as repr() writes it
        assert escaped in "\n".join(lines)


def test_undecodable_file_name_is_printable(repo_dir, capsys) -> None:  # type: ignore[no-untyped-def]
    # A name that is not UTF-8 reaches Python as lone surrogates (surrogateescape), which a
    # UTF-8 stdout cannot encode: printed, it would crash the report.
    from recipe_engine.cli.main import main

    name = os.fsdecode(b"caf\xe9.yaml")
    (repo_dir / name).write_text("version: 1\nname: x\n", encoding="utf-8")
    assert main(["validate", str(repo_dir / name)]) == 1
    out = capsys.readouterr().out
    out.encode("utf-8")  # no UnicodeEncodeError
    assert "caf\\udce9.yaml" in out
