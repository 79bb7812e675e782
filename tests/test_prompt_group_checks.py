"""Prompt groups that cannot mean what they say are refused at their line (issue 24 item 7): a
`strength` for a group with no interventions to scale, and two groups with one name."""

from __future__ import annotations

from pathlib import Path

from recipe_engine.validate import validate_file

HEAD = (
    "version: 1\nname: g\nmodel: {id: builtin:tiny-sentiment}\n"
    "vectors: {v: {kind: random, seed: 0, norm: 1.0}}\n"
    "interventions: [{vector: v, layers: 0, strength: 1.0}]\n"
    "run:\n  mode: trace\n  prompts:\n"
)


def _errors(tmp_path: Path, groups: str) -> list[str]:
    path = tmp_path / "r.yaml"
    path.write_text(HEAD + groups, encoding="utf-8")
    result = validate_file(path)
    return [d.format() for d in result.diagnostics if d.severity == "error"]


def test_a_strength_with_no_interventions_is_refused_at_its_line(tmp_path: Path) -> None:
    [error] = _errors(tmp_path, '    - {name: a, prompts: ["x"], strength: 2, interventions: []}\n')
    assert "[group-strength-unused]" in error and "r.yaml:9:" in error
    assert "/run/prompts/0/strength" in error


def test_two_groups_with_one_name_are_refused(tmp_path: Path) -> None:
    groups = '    - {name: a, prompts: ["x"]}\n    - "y"\n    - {name: a, prompts: ["z"]}\n'
    [error] = _errors(tmp_path, groups)
    assert "[group-name-duplicate]" in error and "r.yaml:11:" in error and "item 0" in error


def test_groups_that_make_sense_pass(tmp_path: Path) -> None:
    groups = (
        '    - {name: a, prompts: ["x"], strength: 2}\n'
        '    - {name: b, prompts: ["y"], interventions: []}\n'
        '    - {prompts: ["z"]}\n    - {prompts: ["w"]}\n'  # unnamed groups may be many
    )
    assert _errors(tmp_path, groups) == []
