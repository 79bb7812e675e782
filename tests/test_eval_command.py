"""`steer eval` on the embedded model, checked against independent references: the aggregate
and the selection rule recomputed by hand from the JSON, the chosen strength's tuning point and
the test row re-measured by a plain `run_recipe` of the recipe, tuning/test disjointness
enforced, and the CSV, JSON and markdown outputs agreeing cell for cell."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest

from recipe_engine.api import load_recipe, run_recipe
from recipe_engine.cli.main import main
from tests.conftest import RECIPES

RECIPE = RECIPES / "sentiment-eval.yaml"
# A short grid and few controls keep this fast; 8 tokens per continuation.
FAST = ["--set", "run.generation.max_new_tokens=8"]
GRID = ["--strengths", "1", "3", "8", "--tune", "data/neutral-tune.txt", "--controls", "3"]
GRID += ["--methods", "sentiment"]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("eval")
    files = {fmt: out / f"table.{fmt}" for fmt in ("json", "csv", "markdown")}
    argv = ["eval", str(RECIPE), *FAST, *GRID]
    for fmt, path in files.items():
        argv += [f"--{fmt}", str(path)]
    argv += ["--plot", str(out / "table.png")]
    assert main(argv) == 0
    return {
        "json": json.loads(files["json"].read_text()),
        "csv": list(csv.DictReader(io.StringIO(files["csv"].read_text()))),
        "markdown": files["markdown"].read_text(),
        "png": (out / "table.png").read_bytes(),
    }


def _rows(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["label"]: row for row in doc["rows"]}


def test_the_aggregate_is_the_readme_formula_recomputed_by_hand(outputs: dict[str, Any]) -> None:
    doc = outputs["json"]
    rows = _rows(doc)
    concept, instruction = doc["concept"], doc["instruction"]
    assert instruction == "instruction"  # the recipe's cosine instruction metric
    base = rows["baseline"]["values"]
    measured = [r for r in doc["rows"] if r["values"] and r["kind"] != "baseline"]
    best = max([base[concept], *(r["values"][concept] for r in measured)])
    for row in [rows["baseline"], *measured]:
        v = row["values"]
        c = min(1.0, max(0.0, (v[concept] - base[concept]) / (best - base[concept])))
        i = min(1.0, max(0.0, v[instruction] / base[instruction]))
        f = min(1.0, max(0.0, base["fluency"] / v["fluency"]))
        expected = 0.0 if min(c, i, f) == 0 else 3 / (1 / c + 1 / i + 1 / f)
        assert row["aggregate"] == pytest.approx(expected, abs=1e-12), row["label"]
    assert rows["baseline"]["aggregate"] == 0.0  # it moves no concept
    assert rows["sentiment"]["aggregate"] > 0


def test_the_chosen_strength_is_the_rule_applied_to_the_tuning_points(
    outputs: dict[str, Any],
) -> None:
    doc = outputs["json"]
    row = _rows(doc)["sentiment"]
    points = row["tuning"]
    assert [p["strength"] for p in points] == [1.0, 3.0, 8.0]
    budget = doc["fluency_budget"] * doc["tuning_fluency"]
    admissible = [p for p in points if p["fluency"] <= budget]
    assert [p["admissible"] for p in points] == [p in admissible for p in points]
    assert any(not p["admissible"] for p in points)  # 8 breaks fluency: the budget binds
    pick = max(admissible, key=lambda p: (p["concept"], -abs(p["strength"])))
    assert row["strength"] == pick["strength"]


def test_the_chosen_tuning_point_and_the_test_row_match_a_plain_run(
    outputs: dict[str, Any],
) -> None:
    """The table's numbers are the ones `steer run` gives for the same settings."""
    doc = outputs["json"]
    row = _rows(doc)["sentiment"]
    strength = row["strength"]
    sets = ["run.generation.max_new_tokens=8", f"interventions.0.strength={strength}"]
    sets += ["report.controls=null", "report.prompt_baseline=null", "expect=[]"]
    tuning = run_recipe(
        load_recipe(RECIPE, overrides=[*sets, "run.prompts={file: data/neutral-tune.txt}"])
    )
    point = next(p for p in row["tuning"] if p["strength"] == strength)
    assert tuning.metric(doc["concept"]).steered == pytest.approx(point["concept"], rel=1e-5)
    assert tuning.metric("fluency").baseline == pytest.approx(doc["tuning_fluency"], rel=1e-5)
    test = run_recipe(load_recipe(RECIPE, overrides=sets))
    for name in doc["columns"]:
        assert test.metric(name).steered == pytest.approx(row["values"][name], rel=1e-5, abs=1e-9)
        assert test.metric(name).baseline == pytest.approx(
            _rows(doc)["baseline"]["values"][name], rel=1e-5, abs=1e-9
        )
    assert len(row["controls"][doc["concept"]]) == 3


def test_csv_json_and_markdown_agree(outputs: dict[str, Any]) -> None:
    doc, table = outputs["json"], outputs["csv"]
    assert [r["row"] for r in table] == [c["row"] for c in doc["cells"]]
    lines = [line for line in outputs["markdown"].splitlines() if line.startswith("| ")][1:]
    assert len(lines) == len(table)
    for cell, record, line in zip(doc["cells"], table, lines, strict=True):
        shown = [part.strip() for part in line.strip("|").split("|")]
        assert shown[0] == cell["row"]
        for k, name in enumerate(["strength", *doc["columns"], "aggregate"], start=1):
            value = cell[name]
            if value is None:
                assert record[name] == "" and shown[k] == "-"
                continue
            assert float(record[name]) == pytest.approx(value, rel=1e-12)
            assert float(shown[k]) == pytest.approx(value, abs=5e-4 if name != "strength" else 0)
    band = next(c for c in doc["cells"] if c["row"] == "sentiment controls mean")
    controls = _rows(doc)["sentiment"]["controls"][doc["concept"]]
    assert band[doc["concept"]] == pytest.approx(sum(controls) / len(controls))
    assert outputs["png"].startswith(b"\x89PNG")


def test_plain_text_prompts_default_to_prefix_prompting_alone(outputs: dict[str, Any]) -> None:
    """No --prompting, no eval.prompting, plain-text run.prompts: a system message has no
    conversation to go into, so the table shows the prefix row only (it used to try both and
    carry a failed system row)."""
    rows = _rows(outputs["json"])
    assert rows["prompting (prefix)"]["values"]
    assert [r for r in rows if r.startswith("prompting")] == ["prompting (prefix)"]


def test_the_prompting_flag_overrides_the_eval_block(tmp_path: Path) -> None:
    """eval.prompting says prefix, --prompting system wins: the one row it asks for, which on
    plain-text prompts says why it has no values (the flag is not validated like the block)."""
    out = tmp_path / "table.json"
    sets = ["eval.methods=[sentiment]", "eval.strengths=null", "eval.tune=null"]
    sets += ["eval.controls=0", "eval.prompting=[prefix]"]
    argv = ["eval", str(RECIPE), *FAST, *[a for s in sets for a in ("--set", s)]]
    assert main([*argv, "--prompting", "system", "--json", str(out)]) == 0
    rows = _rows(json.loads(out.read_text()))
    assert [r for r in rows if r.startswith("prompting")] == ["prompting (system)"]
    assert not rows["prompting (system)"]["values"]
    assert "plain text" in rows["prompting (system)"]["note"]


def test_the_prompting_default_follows_the_prompts() -> None:
    from recipe_engine.evaluate.settings import resolve_settings

    recipe = load_recipe(RECIPE, overrides=["eval.prompting=null"]).recipe
    given = dict(methods=None, strengths=None, tune=None, fluency_budget=None, controls=None)
    chat = resolve_settings(recipe, **given, chat_prompts=True)  # type: ignore[arg-type]
    plain = resolve_settings(recipe, **given, chat_prompts=False)  # type: ignore[arg-type]
    assert (chat.prompting, plain.prompting) == (["system", "prefix"], ["prefix"])
    block = load_recipe(RECIPE, overrides=["eval.prompting=[]"]).recipe
    assert resolve_settings(block, **given, chat_prompts=True).prompting == []  # type: ignore[arg-type]
    flag = resolve_settings(block, **given, prompting=["prefix"], chat_prompts=True)  # type: ignore[arg-type]
    assert flag.prompting == ["prefix"]


def _usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["eval", str(RECIPE), *argv]) == 2
    return capsys.readouterr().err


def test_overlapping_tuning_and_test_prompts_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a copy of the recipe whose tuning file shares one prompt (whitespace aside) with its tests
    shutil.copytree(RECIPES / "_fragments", tmp_path / "_fragments")
    shutil.copytree(RECIPES / "data", tmp_path / "data")
    shutil.copy(RECIPE, tmp_path / "eval.yaml")
    test_prompt = (RECIPES / "data" / "neutral.txt").read_text().splitlines()[3]
    tuning = (RECIPES / "data" / "neutral-tune.txt").read_text() + f"  {test_prompt}\n"
    (tmp_path / "data" / "overlap-tune.txt").write_text(tuning)
    argv = ["eval", str(tmp_path / "eval.yaml"), "--allow-outside-root", "--strengths", "1"]
    assert main([*argv, "--tune", "data/overlap-tune.txt"]) == 2
    err = capsys.readouterr().err
    assert "share 1 prompt(s)" in err and test_prompt.strip() in err
    err = _usage(["--strengths", "1", "--tune", "data/neutral.txt"], capsys)
    assert "make them disjoint" in err


def test_bad_arguments_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--tune FILE" in _usage(["--set", "eval=null", "--strengths", "1", "2"], capsys)
    assert "no vector nope" in _usage(["--methods", "sentiment", "nope"], capsys)


def test_no_admissible_strength_leaves_the_method_unmeasured() -> None:
    from recipe_engine.evaluate.table import TuningPoint, choose_strength

    assert choose_strength([TuningPoint(1.0, 5.0, 9.0, False)]) is None
    ties = [TuningPoint(-2.0, 1.0, 1.0, True), TuningPoint(1.0, 1.0, 1.0, True)]
    assert choose_strength(ties) == 1.0  # a tie goes to the smaller |strength|
    nan = [TuningPoint(1.0, math.nan, 1.0, True), TuningPoint(2.0, 0.5, 1.0, True)]
    assert choose_strength(nan) == 2.0


def test_the_recipes_eval_block_gives_what_the_flags_leave_out(tmp_path: Path) -> None:
    """No --methods/--strengths/--tune/--controls: the recipe's `eval:` block decides."""
    out = tmp_path / "table.json"
    sets = ["eval.methods=[sentiment]", "eval.strengths=[1, 3]", "eval.controls=0"]
    argv = ["eval", str(RECIPE), *FAST, *[a for s in sets for a in ("--set", s)]]
    assert main([*argv, "--prompting", "--json", str(out)]) == 0
    rows = _rows(json.loads(out.read_text()))
    assert [p["strength"] for p in rows["sentiment"]["tuning"]] == [1.0, 3.0]
    assert set(rows) == {"baseline", "sentiment"}  # no controls, no prompting, one method


@pytest.mark.parametrize(
    ("override", "code"),
    [
        ("eval.methods=[sentimnt]", "undefined-vector"),
        ("eval.tune=null", "eval-strengths-need-tune"),
        ("eval.prompting=[prefix, prefix]", "eval-prompting-duplicate"),
        ("eval.prompting=[system]", "eval-prompting-system"),  # plain-text run.prompts
    ],
)
def test_a_wrong_eval_block_is_a_validation_error(override: str, code: str) -> None:
    from recipe_engine.api import validate_file

    result = validate_file(RECIPE, overrides=[override])
    assert code in {d.code for d in result.errors}, [d.format() for d in result.errors]


@pytest.mark.parametrize(
    ("bad", "code"), [("sytem", "invalid-choice"), ("system", "eval-prompting-system")]
)
def test_a_bad_prompting_mode_is_reported_at_its_line_and_column(
    tmp_path: Path, bad: str, code: str
) -> None:
    """Validation (torch-free: tests/test_architecture.py) points at the mode itself in the
    file: a misspelling, and a system message for plain-text prompts (data/neutral.txt)."""
    from recipe_engine.api import validate_file

    shutil.copytree(RECIPES / "_fragments", tmp_path / "_fragments")
    shutil.copytree(RECIPES / "data", tmp_path / "data")
    entry = f"  prompting: [prefix, {bad}]"
    text = RECIPE.read_text().replace("  controls: 8\n", f"  controls: 8\n{entry}\n")
    (tmp_path / "eval.yaml").write_text(text)
    line = text.splitlines().index(entry) + 1
    result = validate_file(tmp_path / "eval.yaml", allow_outside_root=True)
    found = [d for d in result.errors if d.code == code]
    assert found, [d.format() for d in result.errors]
    assert found[0].pointer == "/eval/prompting/1"
    assert found[0].location is not None
    assert (found[0].location.line, found[0].location.column) == (line, entry.index(bad) + 1)


def test_a_lowrank_method_gets_lowrank_controls_and_plain_text_gets_prefix_prompting(
    tmp_path: Path,
) -> None:
    """recipes/trained-lowrank.yaml (plain-text prompts, no eval block, no flags but controls):
    the LoReFT method is measured with its random low-rank controls (it ran: a packed tensor of
    a random non-orthonormal R would still run, tests/test_trained_lowrank.py checks the draw),
    and prompting is the prefix row alone."""
    out = tmp_path / "table.json"
    argv = ["eval", str(RECIPES / "trained-lowrank.yaml"), *FAST, "--controls", "2"]
    # a short training keeps this fast: the table's shape, not the method's quality, is tested
    argv += ["--set", "vectors.positive_reft.steps=5"]
    argv += ["--set", "vectors.positive_reft.targets.max_new_tokens=4"]
    assert main([*argv, "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    rows = _rows(doc)
    assert list(rows) == ["baseline", "positive_reft", "prompting (prefix)"]
    controls = rows["positive_reft"]["controls"][doc["concept"]]
    assert len(controls) == 2 and all(math.isfinite(c) for c in controls)
    assert rows["prompting (prefix)"]["values"]
