"""Prompt groups that cannot mean what they say are refused at their line (issue 24 item 7): a
`strength` for a group with no interventions to scale, and two groups with one name."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def test_each_group_has_its_metric_rows_equal_to_the_group_run_alone() -> None:
    """Issue 24 item 7: metrics were pooled over the groups. A group's rows are the metric over
    its prompts; the reference is the recipe run on that group's prompts alone."""
    from recipe_engine.api import load_recipe, render_text, run_recipe
    from tests.conftest import RECIPES

    recipe = RECIPES / "activation-addition.yaml"
    weak, strong = ['"The weather today is"', '"Our flight home was"'], ['"The new phone is"']
    groups = (
        f"run.prompts=[{{name: weak, prompts: [{', '.join(weak)}], strength: 1.0}}, "
        f"{{name: strong, prompts: [{', '.join(strong)}], strength: 5.0}}]"
    )
    mixed = run_recipe(load_recipe(recipe, overrides=[groups]))
    rows = mixed.to_json()["group_metrics"]
    assert list(rows) == ["weak", "strong"]
    for name, prompts, strength in (("weak", weak, 1.0), ("strong", strong, 5.0)):
        sets = [f"run.prompts=[{', '.join(prompts)}]", f"interventions.0.strength={strength}"]
        alone = run_recipe(load_recipe(recipe, overrides=sets))
        got = {m["name"]: m for m in rows[name]}
        assert "kl_baseline" in got and "kl_baseline:text" not in got  # per-prompt metrics only
        for metric in ("token_prob:positive", "kl_baseline"):
            # another batch: logits agree to float32 summation order (tiny_logits_tolerance,
            # ~2e-4); a probability or a KL moves by at most about that
            assert got[metric]["steered"] == pytest.approx(alone.metric(metric).steered, abs=5e-4)
    pooled = mixed.metric("token_prob:positive").steered
    assert rows["weak"][0]["steered"] != pytest.approx(pooled, abs=1e-3)  # not the pooled mean
    assert "group strong" in render_text(mixed)
