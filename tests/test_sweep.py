"""Sweeps: the grid, the files, and the recommendation rule."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from recipe_engine.api import load_recipe, run_recipe
from recipe_engine.errors import UsageError
from recipe_engine.sweep import SweepPoint, recommend, run_sweep, write_sweep
from recipe_engine.sweep.axes import metric_names, parse_layer_items, resolve_sweep_layers
from tests.conftest import RECIPES, REPO
from tests.helpers import run_steer

RECIPE = RECIPES / "activation-addition.yaml"


def _point(layer: int, strength: float, effect: float, kl: float) -> SweepPoint:
    return SweepPoint(layer, strength, effect, effect, kl)


def test_recommend_takes_the_largest_effect_within_the_budget() -> None:
    points = [
        _point(1, 2, 0.10, 0.1),
        _point(1, 4, 0.30, 0.4),
        _point(2, 4, 0.50, 0.9),  # best effect, over budget
        _point(2, 2, 0.30, 0.2),  # ties with (1, 4): smaller strength wins
    ]
    best = recommend(points, kl_budget=0.5)
    assert best is not None and (best.layer, best.strength) == (2, 2)
    assert recommend(points, kl_budget=0.05) is None


def test_recommend_counts_the_effect_in_the_direction_asked_whatever_the_strengths_sign() -> None:
    """Issue 19 item 3: `--strengths -1 -2 -3 --effect token_prob:negative` recommended -1
    (+0.17) over -3 (+0.64, within the budget): the old rule took the strengths' sign as the
    direction and so looked for the smallest increase."""
    points = [_point(0, -1, 0.17, 0.001), _point(0, -2, 0.46, 0.008), _point(0, -3, 0.64, 0.097)]
    best = recommend(points, kl_budget=0.5)
    assert best is not None and best.strength == -3
    down = [_point(1, -2, -0.2, 0.1), _point(1, -4, -0.4, 0.2), _point(1, -8, 0.1, 0.3)]
    best_down = recommend(down, kl_budget=1.0, direction="down")
    assert best_down is not None and best_down.strength == -4
    best_up = recommend(down, kl_budget=1.0, direction="up")
    assert best_up is not None and best_up.strength == -8


def test_a_setting_that_moves_the_metric_the_wrong_way_is_never_recommended() -> None:
    """Positive strengths with --effect token_prob:negative lower it everywhere: the old rule
    recommended the smallest strength, the one that lowered it least."""
    points = [_point(2, 1, -0.05, 0.01), _point(2, 2, -0.2, 0.02), _point(2, 0, 0.0, 0.0)]
    assert recommend(points, kl_budget=0.5) is None
    assert recommend(points, kl_budget=0.5, direction="down").strength == 2  # type: ignore[union-attr]
    with pytest.raises(UsageError):
        recommend(points, kl_budget=0.5, direction="sideways")


def test_nan_effects_are_never_recommended() -> None:
    assert recommend([_point(1, 2, math.nan, 0.0)], kl_budget=1.0) is None


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["0,1"], [0, 1]),
        (["0", "2"], [0, 2]),
        (["0, 2"], [0, 2]),
        (["2:"], [2, 3]),
        ([":2"], [0, 1]),
        (["1:3"], [1, 2]),
        (["all"], [0, 1, 2, 3]),
        (["-1"], [3]),
        (["-1,0", "3"], [3, 0]),
    ],
)
def test_sweep_layers_take_what_recipes_take(words: list[str], expected: list[int]) -> None:
    # Reference: the README's layer forms on a 4-layer model, resolved by hand.
    assert resolve_sweep_layers(parse_layer_items(words), 4) == expected


@pytest.mark.parametrize("words", [["x"], ["1-3"], ["7"], ["-5"], ["3:1"], [","]])
def test_sweep_layers_reject_what_recipes_reject(words: list[str]) -> None:
    with pytest.raises(UsageError, match="--layers"):
        resolve_sweep_layers(parse_layer_items(words), 4)


def test_metric_names_are_those_a_run_reports() -> None:
    recipe = load_recipe(RECIPE).recipe
    assert metric_names(recipe) == [
        "token_prob:positive",
        "token_prob:negative",
        "kl_baseline",
        "kl_baseline:text",
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"effect": "token_prob:negatve"}, "did you mean 'token_prob:negative'"),
        ({"layers": ["0,9"]}, "layer 9 out of range"),
        ({"direction": "sideways"}, "direction"),
    ],
)
def test_sweep_flags_are_checked_before_the_first_cell(
    kwargs: dict[str, object], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19 item 12: a typo in --effect was reported after the first cell had run."""

    def no_cell(*args: object, **kw: object) -> None:
        raise AssertionError("a cell ran before the flags were checked")

    monkeypatch.setattr("recipe_engine.pipeline.compile_recipe", no_cell)
    args: dict[str, object] = {"layers": [0], **kwargs}
    layers = args.pop("layers")
    with pytest.raises(UsageError, match=message):
        run_sweep(RECIPE, layers, [1.0], **args)  # type: ignore[arg-type]


def test_the_issue_sweep_recommends_minus_three(tmp_path: Path) -> None:
    done = run_steer(
        "sweep",
        str(RECIPE),
        "--layers",
        "0",
        "--strengths",
        "-1",
        "-2",
        "-3",
        "--effect",
        "token_prob:negative",
        "--out",
        str(tmp_path),
        "--format",
        "json",
    )
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    effects = {p["strength"]: p["effect"] for p in payload["points"]}
    assert effects[-3.0] > effects[-2.0] > effects[-1.0] > 0  # P(negative) grows with |s|
    assert payload["recommended"]["strength"] == -3.0
    assert payload["direction"] == "up"
    assert json.loads((tmp_path / "sweep.json").read_text()) == payload


def test_sweep_grid_matches_direct_runs(tmp_path: Path) -> None:
    result = run_sweep(RECIPE, [1, 3], [0.0, 4.0], effect="token_prob:positive")
    assert [(p.layer, p.strength) for p in result.points] == [(1, 0), (1, 4), (3, 0), (3, 4)]
    zero = result.points[0]
    assert zero.effect == 0 and zero.kl == 0
    direct = run_recipe(
        load_recipe(
            RECIPE,
            overrides=[
                "interventions.0.layers=3",
                "interventions.0.strength=4.0",
                "vectors.sentiment.layer=3",
            ],
        )
    )
    steered = direct.metric("token_prob:positive")
    assert math.isclose(result.points[3].effect, steered.delta, abs_tol=1e-7)
    paths = write_sweep(result, tmp_path)
    rows = list(csv.DictReader(paths["csv"].open()))
    assert len(rows) == 4 and {r["layer"] for r in rows} == {"1", "3"}
    payload = json.loads(paths["json"].read_text())
    assert payload["effect_metric"] == "token_prob:positive" and len(payload["points"]) == 4
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_cli_writes_files_and_recommends(tmp_path: Path) -> None:
    done = run_steer(
        "sweep",
        str(RECIPE),
        "--layers",
        "1:3",
        "--strengths",
        "0",
        "2",
        "--out",
        str(tmp_path),
        "--kl-budget",
        "10",
    )
    assert done.returncode == 0, done.stderr
    assert "recommended: layer" in done.stdout
    assert {p.name for p in tmp_path.iterdir()} == {"sweep.csv", "sweep.json", "sweep.png"}


def test_sweep_usage_errors() -> None:
    with pytest.raises(UsageError):
        run_sweep(RECIPE, [1], [1.0], intervention=5)
    with pytest.raises(UsageError):
        run_sweep(RECIPE, [1], [1.0], effect="no_such_metric")
    assert run_steer("sweep", str(RECIPE), "--layers", "x", "--strengths", "1").returncode == 2


def _sweep_examples() -> list[list[str]]:
    import shlex

    from recipe_engine.cli import sweep as sweep_cli

    block = sweep_cli.EPILOG.split("examples:\n", 1)[1].split("\n\n", 1)[0]
    return [shlex.split(line)[1:] for line in block.replace("\\\n", " ").splitlines() if line]


def test_the_help_examples_pass_every_check_before_the_first_cell(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each `steer sweep --help` example parses, and its --layers and --effect resolve against
    the recipe (the grid itself is what test_the_issue_sweep_recommends_minus_three runs)."""
    from recipe_engine.cli.main import build_parser

    class FirstCell(Exception):
        pass

    def first_cell(*args: object, **kw: object) -> None:
        raise FirstCell

    monkeypatch.setattr("recipe_engine.pipeline.compile_recipe", first_cell)
    examples = _sweep_examples()
    assert len(examples) == 4
    for argv in examples:
        args = build_parser().parse_args(argv)
        assert (REPO / args.recipe).is_file(), argv
        with pytest.raises(FirstCell):
            run_sweep(
                REPO / args.recipe,
                args.layers,
                args.strengths,
                effect=args.effect,
                direction=args.direction,
                overrides=args.overrides,
            )


def test_negative_layers_and_open_ranges_reach_the_sweep_through_argparse() -> None:
    from recipe_engine.cli.main import build_parser

    args = build_parser().parse_args(
        ["sweep", str(RECIPE), "--layers", "-1", "2:", "0,1", "--strengths", "-1", "-2"]
    )
    assert args.layers == ["-1", "2:", "0,1"] and args.strengths == [-1.0, -2.0]
    assert resolve_sweep_layers(parse_layer_items(args.layers), 4) == [3, 2, 0, 1]
