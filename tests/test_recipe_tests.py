"""`expect:` claims, `steer test` and `steer lock` (README, Recipes as tests).

The claims' values are checked against numbers recomputed here from the report's own fields
(an independent read of the JSON), the JUnit file is read back by junitparser (a JUnit parser
from the package index), and the GitHub annotation is matched against the claim's line found
by searching the recipe text."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recipe_engine.api import check_lock, load_recipe, validate_file, write_lock
from recipe_engine.cli.main import main
from tests.conftest import RECIPES

STEER = [sys.executable, "-m", "recipe_engine"]


def _copy_gallery_recipe(tmp_path: Path, name: str) -> Path:
    """A gallery recipe with what it reads, in a folder of its own (edits stay there)."""
    for part in ("data", "_fragments", "vectors"):
        shutil.copytree(RECIPES / part, tmp_path / part)
    target = tmp_path / name
    shutil.copy(RECIPES / name, target)
    return target


def _line_of(path: Path, needle: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


# -- validation (torch-free) ---------------------------------------------------------------

BAD = """\
version: 1
name: bad
model: {id: "builtin:tiny-sentiment"}
vectors:
  v: {kind: contrastive, positive: [good], negative: [bad], layer: 0}
interventions:
  - {vector: v, op: add, layers: 0, strength: 3.0}
run: {mode: trace, prompts: [The day was]}
report:
  metrics:
    - {kind: token_prob, tokens: {positive: [great]}}
expect:
  - {metric: fluensy, at_most: 2}
  - {metric: concept:sentiment, at_least: 1}
  - {metric: token_prob:positive, of: control_z, at_least: 3}
  - {metric: token_prob:positive, minus: baseline}
  - {metric: token_prob:positive, at_least: 0.5, at_most: 0.1}
  - {conditions: {intervention: 0, fires_on: [The day was]}}
"""


def test_bad_expectations_are_errors_at_their_line_without_torch(tmp_path: Path) -> None:
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(BAD, encoding="utf-8")
    code = (
        "import sys; from recipe_engine.api import validate_file; "
        f"r = validate_file({str(recipe)!r}); "
        "print('\\n'.join(d.format() for d in r.diagnostics)); "
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "False"  # validation never imported torch
    found = {line.rsplit("[", 1)[1].rstrip("]"): line for line in lines[:-1]}
    want = {
        "expect-unknown-metric": (13, "did you mean 'fluency'"),
        "expect-metric-not-computed": (14, "add {kind: concept"),
        "expect-needs-controls": (15, "report.controls"),
        "expect-no-bound": (16, "at_least, at_most"),
        "expect-empty-range": (17, "nothing can pass"),
        "expect-not-conditional": (18, "no `when:`"),
    }
    assert set(found) == set(want), lines
    for code_name, (line, text) in want.items():
        assert f"bad.yaml:{line}:" in found[code_name], found[code_name]
        assert text in found[code_name], found[code_name]


def test_the_gallery_validates_with_its_claims() -> None:
    for path in [*RECIPES.glob("*.yaml"), *(RECIPES / "real").glob("*.yaml")]:
        result = validate_file(path)
        assert result.ok, [d.format() for d in result.errors]


# -- steer test ----------------------------------------------------------------------------


def test_gallery_claims_pass_and_read_the_report(tmp_path: Path) -> None:
    from recipe_engine.api import run_recipe, run_recipe_tests

    (result,) = run_recipe_tests([RECIPES / "vector-arithmetic.yaml"])
    assert result.passed, [r.line() for r in result.results]
    # each measured number is the report's own, recomputed from its fields here
    report = run_recipe(load_recipe(RECIPES / "vector-arithmetic.yaml")).to_json()
    food = next(m for m in report["metrics"] if m["name"] == "token_prob:food")
    assert float(result.results[0].measured) == pytest.approx(
        food["steered"] - food["baseline"], abs=1e-5
    )
    # per_prompt (what per_prompt claims read): one value per prompt, whose mean is the side's
    rows = food["per_prompt"]
    assert len(rows["steered"]) == len(report["prompts"]) == len(rows["baseline"])
    for side in ("baseline", "steered"):
        assert sum(rows[side]) / len(rows[side]) == pytest.approx(food[side], abs=1e-5)


def test_halved_strength_fails_the_right_claim_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import junitparser

    recipe = _copy_gallery_recipe(tmp_path, "activation-addition.yaml")
    text = recipe.read_text(encoding="utf-8")
    assert text.count("strength: 3.0") == 1
    text = text.replace("strength: 3.0", "strength: 1.5")  # half the demo's strength
    recipe.write_text(text, encoding="utf-8")
    junit = tmp_path / "results.xml"
    code = main(["test", str(recipe), "--format", "github", "--junit", str(junit)])
    out = capsys.readouterr().out
    assert code == 1
    line = _line_of(recipe, "{metric: token_prob:positive, minus: baseline, at_least: 0.4}")
    annotations = [a for a in out.splitlines() if a.startswith("::error ")]
    assert len(annotations) == 1, out  # the KL claim still holds: less steering, less cost
    assert annotations[0].startswith(f"::error file={recipe},line={line},")
    assert f",line={line}," in annotations[0], annotations[0]
    assert "token_prob:positive steered - baseline" in annotations[0]
    assert any(o.startswith("PASS ") and "kl_baseline:text" in o for o in out.splitlines())

    xml = junitparser.JUnitXml.fromfile(str(junit))
    cases = [case for suite in xml for case in suite]
    assert len(cases) == 2
    failed = [c for c in cases if not c.is_passed]
    assert len(failed) == 1 and "token_prob:positive" in failed[0].name
    assert failed[0].result and isinstance(failed[0].result[0], junitparser.Failure)
    assert failed[0]._elem.get("line") == str(line)


def test_changed_since_tests_only_recipes_whose_inputs_changed(tmp_path: Path) -> None:
    from recipe_engine.api import run_recipe_tests

    a = _copy_gallery_recipe(tmp_path, "activation-addition.yaml")
    b = tmp_path / "persistent-edit.yaml"
    shutil.copy(RECIPES / "persistent-edit.yaml", b)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=tmp_path, check=True)
    assert run_recipe_tests([tmp_path], changed_since="HEAD") == []
    # a data file only activation-addition reads (its KL passages)
    passages = tmp_path / "data" / "passages.txt"
    passages.write_text(passages.read_text(encoding="utf-8") + "One more line.\n", "utf-8")
    tested = run_recipe_tests([tmp_path], changed_since="HEAD")
    assert [r.path for r in tested] == [a]


# -- steer lock ----------------------------------------------------------------------------


def _locked(tmp_path: Path) -> tuple[Path, Path]:
    """A recipe on a copied model folder, with a lock written."""
    model = tmp_path / "model"
    from recipe_engine.builtin_models import BUILTINS

    weights = BUILTINS["tiny-sentiment"].weights_dir
    assert weights is not None
    shutil.copytree(weights, model)
    recipe = _copy_gallery_recipe(tmp_path, "activation-addition.yaml")
    return recipe, model


def _lock_differences(recipe: Path) -> list[str]:
    loaded = load_recipe(recipe, allow_outside_root=True)
    found = check_lock(loaded.recipe, loaded.document)
    assert found is not None
    return found


def test_lock_is_sorted_json_and_an_unchanged_checkout_matches(tmp_path: Path) -> None:
    recipe = _copy_gallery_recipe(tmp_path, "activation-addition.yaml")
    loaded = load_recipe(recipe)
    path = write_lock(loaded.recipe, loaded.document)
    text = path.read_text(encoding="utf-8")
    assert path.name == "activation-addition.yaml.lock" and text.endswith("}\n")
    data = json.loads(text)
    assert text == json.dumps(data, indent=2, sort_keys=True) + "\n"
    # the run's prompts, the KL passages and the vector's contrast sets (from the fragment)
    data_files = {"neutral.txt", "passages.txt", "positive.txt", "negative.txt"}
    assert set(data["data_files"]) == {f"data/{name}" for name in data_files}
    assert "model.safetensors" in data["model"]["weights"]
    assert data["recipe_files"].keys() == {"activation-addition.yaml", "_fragments/tiny-model.yaml"}
    assert _lock_differences(recipe) == []


def test_lock_names_an_edited_data_file_in_one_line(tmp_path: Path) -> None:
    recipe = _copy_gallery_recipe(tmp_path, "activation-addition.yaml")
    loaded = load_recipe(recipe)
    write_lock(loaded.recipe, loaded.document)
    neutral = tmp_path / "data" / "neutral.txt"
    neutral.write_text(neutral.read_text(encoding="utf-8").replace("The", "A", 1), "utf-8")
    (line,) = _lock_differences(recipe)
    assert line.startswith("a data file changed: data/neutral.txt is "), line


def test_lock_names_a_replaced_model_file_in_one_line(tmp_path: Path) -> None:
    recipe, model = _locked(tmp_path)
    fragment = tmp_path / "_fragments" / "tiny-model.yaml"
    text = fragment.read_text(encoding="utf-8")
    assert "id: builtin:tiny-sentiment" in text
    fragment.write_text(text.replace("id: builtin:tiny-sentiment", "id: ../model"), "utf-8")
    loaded = load_recipe(recipe, allow_outside_root=True)
    write_lock(loaded.recipe, loaded.document)
    weights = model / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of the last weight
    weights.write_bytes(bytes(data))
    (line,) = _lock_differences(recipe)
    assert line.startswith("model changed: weights/model.safetensors is "), line


def test_lock_names_a_different_torch_version_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import recipe_engine.lock as lock

    recipe = _copy_gallery_recipe(tmp_path, "activation-addition.yaml")
    loaded = load_recipe(recipe)
    write_lock(loaded.recipe, loaded.document)
    real = lock._version
    monkeypatch.setattr(lock, "_version", lambda n: "2.11.0" if n == "torch" else real(n))
    (line,) = _lock_differences(recipe)
    assert line == f"torch 2.11.0 vs {real('torch')} in the lock", line


def test_steer_run_checks_the_lock_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = _copy_gallery_recipe(tmp_path, "activation-addition.yaml")
    assert main(["lock", str(recipe)]) == 0
    passages = tmp_path / "data" / "passages.txt"
    passages.write_text("Changed.\n", "utf-8")
    assert main(["run", str(recipe)]) == 1
    err = capsys.readouterr().err
    assert "steer: lock: a data file changed: data/passages.txt" in err
    assert "--update-lock" in err
    assert main(["lock", str(recipe), "--check"]) == 1
    assert main(["run", str(recipe), "--update-lock", "--format", "json"]) == 0
    assert main(["lock", str(recipe), "--check"]) == 0


def test_steer_test_stops_at_a_lock_mismatch_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import recipe_engine.recipe_tests as recipe_tests

    recipe = _copy_gallery_recipe(tmp_path, "activation-addition.yaml")
    assert main(["lock", str(recipe)]) == 0
    neutral = tmp_path / "data" / "neutral.txt"
    neutral.write_text(neutral.read_text(encoding="utf-8") + "An extra prompt was\n", "utf-8")

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("ran a recipe whose lock does not match")

    monkeypatch.setattr(recipe_tests, "run_recipe", never)
    junit = tmp_path / "r.xml"
    assert main(["test", str(recipe), "--junit", str(junit)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.startswith("LOCK ")] == [
        next(line for line in out if "a data file changed: data/neutral.txt" in line)
    ]
    assert any(line.startswith("ERROR ") and "lock" in line for line in out)
    import junitparser

    (case,) = [c for suite in junitparser.JUnitXml.fromfile(str(junit)) for c in suite]
    assert isinstance(case.result[0], junitparser.Error)
