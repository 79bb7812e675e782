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
from tests.conftest import RECIPES
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
    best = recommend(points, kl_budget=0.5, sign=1.0)
    assert best is not None and (best.layer, best.strength) == (2, 2)
    assert recommend(points, kl_budget=0.05, sign=1.0) is None


def test_recommend_follows_the_sign_of_the_strengths() -> None:
    points = [_point(1, -2, -0.2, 0.1), _point(1, -4, -0.4, 0.2), _point(1, -8, 0.1, 0.3)]
    best = recommend(points, kl_budget=1.0, sign=-1.0)
    assert best is not None and best.strength == -4


def test_nan_effects_are_never_recommended() -> None:
    assert recommend([_point(1, 2, math.nan, 0.0)], kl_budget=1.0, sign=1.0) is None


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
