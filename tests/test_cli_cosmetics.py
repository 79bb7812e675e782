"""Output that reads right: report.top_tokens honoured, no "heads heads", no "1 errors", full
names in the cosine table, no -0.0000, and warnings where a number would be silently +0.0000."""

from __future__ import annotations

import re

import pytest

from recipe_engine.cli.vectors import cosine_table
from recipe_engine.report.text import fixed
from recipe_engine.sweep import run_sweep
from recipe_engine.validate import validate_file
from tests.conftest import MINIMAL, RECIPES
from tests.helpers import run_steer

TOKEN = re.compile(r"'[^']*' \d\.\d{3}")  # one `' great' 0.157` entry of a `next:` line


def _next_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if " next: " in line]


@pytest.mark.parametrize("n", [10, 2])
def test_text_output_shows_report_top_tokens(n: int) -> None:
    result = run_steer(
        "run", str(RECIPES / "activation-addition.yaml"), "--set", f"report.top_tokens={n}"
    )
    assert result.returncode == 0, result.stderr
    lines = _next_lines(result.stdout)
    assert lines
    assert all(len(TOKEN.findall(line)) == n for line in lines), lines


def test_heads_site_is_named_once() -> None:
    result = run_steer("run", str(RECIPES / "head-ablation.yaml"))
    assert result.returncode == 0, result.stderr
    assert "heads heads" not in result.stdout
    assert "at layer 0 heads [1], positions all" in result.stdout


@pytest.mark.parametrize(
    ("value", "signed", "text"),
    [
        (-0.0, False, "0.0000"),
        (-0.00001, False, "0.0000"),
        (-0.00001, True, "+0.0000"),
        (0.0, True, "+0.0000"),
        (-0.00006, True, "-0.0001"),
        (1.23456, True, "+1.2346"),
    ],
)
def test_fixed_never_prints_negative_zero(value: float, signed: bool, text: str) -> None:
    assert fixed(value, signed=signed) == text


def test_cosine_table_shows_full_names() -> None:
    names = ["sentiment_layer1", "sentiment_layer2"]
    cosine = {a: {b: (1.0 if a == b else -0.00001) for b in names} for a in names}
    lines = cosine_table(cosine)
    header = lines[1].split()
    assert header == names  # not two columns both called `sentimen`
    assert all("-0.000" not in line for line in lines)
    # every value sits under the end of its column's name
    ends = [lines[1].index(n) + len(n) for n in names]
    for row in lines[2:]:
        assert [m.end() for m in re.finditer(r"\d\.\d{3}", row)] == ends


def test_validate_summary_counts_in_the_singular(write) -> None:  # type: ignore[no-untyped-def]
    path = write("r.yaml", MINIMAL + "bogus: 1\n")
    text = run_steer("validate", str(path))
    assert "1 file checked: 0 valid, 1 invalid (1 error, 0 warnings)" in text.stdout
    github = run_steer("validate", str(path), "--format", "github")
    assert "1 file checked: 0 valid, 1 invalid" in github.stdout


def _generate(metric: str) -> str:
    return (
        "version: 1\nname: g\nmodel: {id: builtin:tiny-random}\n"
        "vectors:\n  v: {kind: random, seed: 1, norm: 1.0}\n"
        "interventions:\n  - {vector: v, op: add, layers: 0, positions: generated}\n"
        "run: {mode: generate, prompts: [hello], compare_baseline: true}\n"
        f"report:\n  metrics:\n    - {metric}\n"
    )


@pytest.mark.parametrize(
    ("metric", "warned"),
    [
        ("{kind: token_prob, tokens: {a: [x]}}", True),
        ("{kind: kl_baseline}", True),
        ("{kind: logit_diff, positive: [x], negative: [y]}", True),
        ("{kind: token_prob, tokens: {a: [x]}, at: generated}", False),
    ],
)
def test_generated_positions_with_next_token_metrics_warn(write, metric: str, warned: bool) -> None:  # type: ignore[no-untyped-def]
    result = validate_file(write("g.yaml", _generate(metric)))
    assert result.errors == []
    codes = [(d.code, d.pointer) for d in result.warnings]
    assert (("metrics-miss-generated", "/interventions/0/positions") in codes) is warned


def test_sweeping_a_zero_op_strength_warns(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = run_sweep(RECIPES / "head-ablation.yaml", [0], [1.0, 2.0])
    # the two cells are the same run: the effect does not move with the strength
    assert result.points[0].effect == result.points[1].effect
    assert any("[strength-ignored]" in w for w in result.warnings), result.warnings
    cli = run_steer(
        "sweep",
        str(RECIPES / "head-ablation.yaml"),
        "--layers",
        "0",
        "--strengths",
        "1",
        "2",
        "--out",
        str(tmp_path),
    )
    assert cli.returncode == 0, cli.stderr
    assert "[strength-ignored]" in cli.stderr
