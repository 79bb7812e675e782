"""`steer sweep` ranks by the text metrics: a fluency budget and the random-control band."""

from __future__ import annotations

import math

import pytest

from recipe_engine.api import SweepRanking, run_sweep
from recipe_engine.sweep import SweepPoint, recommend
from tests.conftest import RECIPES


def _point(strength: float, effect: float, fluency: float, mean: float, sd: float) -> SweepPoint:
    return SweepPoint(0, strength, effect, effect, 0.01, fluency, mean, sd)


def test_fluency_budget_and_control_band_filter_the_recommendation() -> None:
    points = [
        _point(1.0, 0.30, 2.0, 0.0, 0.1),  # z = 3
        _point(2.0, 0.60, 2.5, 0.0, 0.1),  # z = 6
        _point(3.0, 0.90, 9.0, 0.0, 0.1),  # z = 9, but not fluent
        _point(4.0, 0.95, 2.2, 0.8, 0.1),  # fluent, but within 1.5 sds of the controls
    ]
    assert recommend(points, 0.5).strength == 4.0  # the old rule: largest effect
    fluent = SweepRanking(fluency_budget=3.0)
    assert recommend(points, 0.5, ranking=fluent).strength == 4.0
    both = SweepRanking(fluency_budget=3.0, controls=8, min_z=2.0)
    assert recommend(points, 0.5, ranking=both).strength == 2.0
    assert points[1].z == pytest.approx(6.0)
    assert _point(1.0, 0.5, 2.0, 0.0, 0.0).z == math.inf  # controls that agree exactly


@pytest.mark.slow
def test_a_sweep_with_controls_reports_the_band_and_clears_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = run_sweep(
        RECIPES / "activation-addition.yaml",
        [0],
        [1.0, 3.0],
        kl_budget=0.1,
        ranking=SweepRanking(controls=8),  # a control band from >= 8 seeds, as everywhere
    )
    for point in result.points:
        assert point.control_mean is not None and point.control_sd is not None
        assert abs(point.control_mean) < 0.1  # random vectors barely move P(positive)
    best = result.recommended
    assert best is not None and best.strength == 3.0 and (best.z or 0) >= 2.0
    as_json = result.to_json()
    assert as_json["controls"] == 8 and as_json["points"][1]["z"] is not None
    from recipe_engine.api import write_sweep

    paths = write_sweep(result, tmp_path)
    assert "control_sd" in paths["csv"].read_text().splitlines()[0]
