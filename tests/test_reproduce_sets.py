"""`steer sweep --layers` and `steer condition --layers` rebuild the vector at every layer, so the
setting they report is more than the intervention's layer (issue 24 item 4: pasting the printed
setting scored with the layer-0 vector). Each cell carries the `--set` lines that reproduce it;
applying them to the recipe gives the reported number."""

from __future__ import annotations

import pytest

from recipe_engine.api import find_condition, load_recipe, run_recipe, run_sweep
from recipe_engine.sweep.condition import read_labelled, split
from tests.conftest import RECIPES

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_a_sweep_cell_is_reproduced_by_its_sets() -> None:
    recipe = RECIPES / "activation-addition.yaml"
    result = run_sweep(recipe, [2], [3.0], effect="token_prob:positive")
    [point] = result.points
    assert "vectors.sentiment.layer=2" in point.sets
    assert point.to_json()["sets"] == list(point.sets)
    again = run_recipe(load_recipe(recipe, overrides=list(point.sets)))
    delta = again.metric("token_prob:positive").delta
    # the same computation on the same machine: the same number (the sweep reuses the baseline
    # pass, computed identically)
    assert delta == pytest.approx(point.effect, abs=1e-7)
    # what the old output said to change (the intervention's layer only) measures another thing
    partial = [s for s in point.sets if not s.startswith("vectors.")]
    other = run_recipe(load_recipe(recipe, overrides=partial)).metric("token_prob:positive").delta
    assert other is not None and abs(other - point.effect) > 0.01


def test_a_condition_cell_is_reproduced_by_its_sets() -> None:
    recipe, data = RECIPES / "conditional-steering.yaml", RECIPES / "data" / "topic-labelled.jsonl"
    # the condition must be read at or before the layer it gates: steer at layer 3
    result = find_condition(recipe, data, layers=[2], overrides=["interventions.0.layers=3"])
    assert result.sets == [
        "interventions.0.layers=3",
        "vectors.food_topic.layer=2",
        "interventions.0.when.layer=2",
        f"interventions.0.when.compare={result.best.compare}",
        f"interventions.0.when.threshold={result.best.threshold:g}",
    ]
    assert result.to_json()["sets"] == result.sets
    texts, labels = read_labelled(data)
    tune, _ = split(labels, 0.3, 0)  # find_condition's defaults
    prompts = [texts[i] for i in tune]
    sets = [*result.sets, "run.prompts=" + repr(prompts).replace("'", '"'), "report.metrics=[]"]
    report = run_recipe(load_recipe(recipe, overrides=sets))
    scores = [p.conditions[0].scores[0] for p in report.prompts]
    # the run's scores are the search's: its cells were measured on exactly these
    assert scores == pytest.approx([s for s, _ in result.scores[2]], abs=1e-5)
    fired = [p.conditions[0].fired for p in report.prompts]
    tp = sum(f and labels[i] == 1 for f, i in zip(fired, tune, strict=True))
    assert tp / max(1, sum(fired)) == pytest.approx(result.best.precision)
