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


def test_the_report_summarises_conditions_and_lists_the_groups_plans() -> None:
    """Issue 24 item 7: the JSON `plan` held only the recipe's plan, and how many prompts a
    `when:` fired on had to be counted by hand from each prompt's line."""
    from recipe_engine.api import load_recipe, render_text, run_recipe
    from tests.conftest import RECIPES

    recipe = RECIPES / "conditional-steering.yaml"
    groups = (
        'run.prompts=[{name: food, prompts: ["The kitchen closes at ten. The pizza was"]}, '
        '{name: films, prompts: ["We watched the show on Friday. The movie was"], '
        "strength: 1.0}]"
    )
    report = run_recipe(load_recipe(recipe, overrides=[groups, "report.metrics=[]"]))
    fired = [p.conditions[0].fired for p in report.prompts]  # each prompt's own verdict
    [summary] = report.to_json()["conditions"]
    assert summary["fired"] == sum(fired) and summary["prompts"] == 2
    assert summary["groups"] == {
        "food": {"fired": int(fired[0]), "prompts": 1},
        "films": {"fired": int(fired[1]), "prompts": 1},
    }
    assert fired == [True, False]  # the recipe's own README example
    [own] = report.to_json()["groups"]
    assert own["group"] == "films" and [op["strength"] for op in own["plan"]] == [1.0]
    text = render_text(report)
    assert "intervention 0 fired on 1 of 2 prompts" in text and "food: 1 of 1" in text
