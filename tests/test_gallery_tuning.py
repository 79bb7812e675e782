"""Where the embedded gallery's numbers come from: each is re-chosen here, on tuning prompts, by
one stated rule, and must be the value the recipe ships. The effects themselves are asserted on
the disjoint test prompts (tests/test_gallery.py; disjointness: tests/test_data_splits.py).

The rule is scripts/eval_tiny_sentiment.py's (`choose`, GOAL, KL_BOUND), in one direction: of a
small grid, the setting that adds the least total strength among those whose effect on the
tuning prompts reaches GOAL (0.6: the gallery's 0.4 target plus a margin for the move to new
prompts) with side-effect KL on neutral passages (data/passages.txt) within KL_BOUND (0.3
nats/position). Aiming at 0.4 itself would pass the test prompts about half the time: e.g. the
topic vector's strength 0.5 reaches +0.49 on the tuning prompts and +0.26 on the test ones.

Recipes that keep the demo's layer and strength on purpose (so their results compare with it)
are checked to still match it; the condition's threshold is the one `steer condition` picks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from typing import TypeVar

import pytest
import torch

from recipe_engine.api import compile_recipe, find_condition, load_recipe, run_recipe
from scripts.eval_tiny_sentiment import GOAL, KL_BOUND
from tests.conftest import RECIPES
from tests.support.float_tolerance import (
    TINY_RESID_MAGNITUDE,
    TINY_WIDTH,
    reordered_sum_tolerance,
)

pytestmark = pytest.mark.slow

K = TypeVar("K", bound=Hashable)
NEUTRAL_TUNE = "run.prompts={file: data/neutral-tune.txt}"
TOPIC_TUNE = "run.prompts={file: data/topic-tune.txt}"
PASSAGES_KL = {"kind": "kl_baseline", "text": {"file": "data/passages.txt"}}


def _measure(name: str, effect: str, *overrides: str) -> tuple[float, float]:
    """(effect delta, KL on the neutral passages) of one setting of a recipe."""
    shipped = load_recipe(RECIPES / name).recipe
    metrics = [m.model_dump(mode="json") for m in shipped.report.metrics]
    if PASSAGES_KL not in [{k: m.get(k) for k in PASSAGES_KL} for m in metrics]:
        metrics.append(PASSAGES_KL)
    sets = [*overrides, "report.metrics=" + json.dumps(metrics)]
    report = run_recipe(load_recipe(RECIPES / name, overrides=sets))
    delta = report.metric(effect).delta
    assert delta is not None
    return delta, report.metric("kl_baseline:text").steered


def _pick(cells: dict[K, tuple[float, float]], total: Callable[[K], float]) -> K | None:
    """The rule: least total strength reaching GOAL within KL_BOUND."""
    # A cell within float noise of GOAL or KL_BOUND would make the pick depend on the CPU:
    # the effect is a difference of probabilities (float32 logits of magnitude ~13 through 5
    # reordered 768-term sums: ~2e-4, times p <= 1), KL an average of such terms. 1e-3 keeps
    # every cell clear of that; a shipped grid with a cell closer to a bound would need its
    # setting chosen again, so the test says so instead of picking by luck.
    for key, (effect, kl) in cells.items():
        assert abs(effect - GOAL) > 1e-3 and abs(kl - KL_BOUND) > 1e-3, (key, effect, kl)
    fit = [k for k, (effect, kl) in cells.items() if effect >= GOAL and kl <= KL_BOUND]
    return min(fit, key=total) if fit else None


def _strength_pick(name: str, grid: list[float], effect: str, prompts: str) -> float | None:
    cells = {s: _measure(name, effect, prompts, f"interventions.0.strength={s}") for s in grid}
    return _pick(cells, abs)


def _shipped_strength(name: str) -> float:
    return load_recipe(RECIPES / name).recipe.interventions[0].strength


STRENGTH_GRIDS = {
    "activation-addition.yaml": ([2.0, 2.5, 3.0, 4.0], "token_prob:positive", NEUTRAL_TUNE),
    "probe-direction.yaml": ([20.0, 40.0, 60.0, 80.0], "token_prob:positive", NEUTRAL_TUNE),
    "clamp-direction.yaml": ([20.0, 40.0, 60.0, 80.0], "token_prob:positive", NEUTRAL_TUNE),
    "persistent-edit.yaml": ([1.0, 1.5, 2.0, 2.5], "token_prob:positive", NEUTRAL_TUNE),
    "vector-arithmetic.yaml": ([0.5, 1.0, 1.5, 2.0], "token_prob:food", TOPIC_TUNE),
}
# multi-layer: layer 1's weight (layer 0 keeps 1) x strength
MULTI_LAYER_WEIGHTS = [0.25, 0.5, 1.0]
MULTI_LAYER_STRENGTHS = [1.5, 2.0, 2.5]


@pytest.mark.parametrize(
    ("name", "grid", "effect", "prompts"),
    [pytest.param(name, *spec, id=name) for name, spec in STRENGTH_GRIDS.items()],
)
def test_shipped_strength_is_the_rules_pick_on_the_tuning_prompts(
    name: str, grid: list[float], effect: str, prompts: str
) -> None:
    # the demo's strength is also the sweep's pick (tests/test_gallery.py): both rules agree
    assert _strength_pick(name, grid, effect, prompts) == _shipped_strength(name)


def _header(name: str) -> str:
    """The recipe's leading comment, as one line."""
    text = (RECIPES / name).read_text(encoding="utf-8")
    lines = [line[1:].strip() for line in text.splitlines() if line.startswith("#")]
    return " ".join(lines)


@pytest.mark.parametrize("name", [*list(STRENGTH_GRIDS)[1:], "multi-layer.yaml"])
def test_each_tuned_recipe_states_its_grid_and_the_rule(name: str) -> None:
    head = _header(name)
    grids = [MULTI_LAYER_WEIGHTS, MULTI_LAYER_STRENGTHS]
    grids = [STRENGTH_GRIDS[name][0]] if name in STRENGTH_GRIDS else grids
    for grid in grids:
        assert "/".join(f"{g:g}" for g in grid) in head, head
    assert f">= {GOAL:g} " in head and f"KL <= {KL_BOUND:g} on neutral passages" in head, head
    tuning = STRENGTH_GRIDS.get(name, (None, None, NEUTRAL_TUNE))[2]
    assert tuning.split("file: ")[1].rstrip("}") in head, head


def test_multi_layer_weight_and_strength_are_the_rules_pick_on_the_tuning_prompts() -> None:
    """Layer 0 keeps weight 1 (two layers are what the recipe shows); the layer-1 weight and
    the strength are chosen: total strength added is strength x (1 + weight)."""
    cells = {
        (w, s): _measure(
            "multi-layer.yaml",
            "token_prob:positive",
            NEUTRAL_TUNE,
            f"interventions.0.layers={{0: 1.0, 1: {w}}}",
            f"interventions.0.strength={s}",
        )
        for w in MULTI_LAYER_WEIGHTS
        for s in MULTI_LAYER_STRENGTHS
    }
    item = load_recipe(RECIPES / "multi-layer.yaml").recipe.interventions[0]
    assert isinstance(item.layers, dict) and item.layers[0] == 1.0 and len(item.layers) == 2
    assert _pick(cells, lambda k: k[1] * (1 + k[0])) == (item.layers[1], item.strength)


TIED_TO_DEMO = [
    "generate-every-step.yaml",
    "chat-assistant.yaml",
    "vector-from-file.yaml",
    "project-out.yaml",
    "conditional-steering.yaml",
]


@pytest.mark.parametrize("name", TIED_TO_DEMO)
def test_recipes_that_reuse_the_demo_setting_still_match_it(name: str) -> None:
    demo = compile_recipe(load_recipe(RECIPES / "activation-addition.yaml"))
    compiled = compile_recipe(load_recipe(RECIPES / name))
    (want,) = demo.recipe.interventions
    adds = [i for i in compiled.recipe.interventions if i.op == "add"]
    assert [(i.vector, i.layers, i.strength) for i in adds] == [
        ("sentiment", want.layers, want.strength)
    ]
    # the same vector: from the same fragment, or (vector-from-file) the file the demo built.
    # That file was extracted on another machine: its entries agree with this one's extraction
    # up to float32 summation order (1.9e-6 apart on an AMD EPYC), not bit for bit. The vector
    # is a difference of means of block-0 activations up to TINY_RESID_MAGNITUDE through
    # TINY_WIDTH-term sums; another layer or data would move it by whole units.
    got, want = compiled.vectors["sentiment"].tensor, demo.vectors["sentiment"].tensor
    tolerance = reordered_sum_tolerance(TINY_RESID_MAGNITUDE, TINY_WIDTH)
    torch.testing.assert_close(got, want, atol=tolerance, rtol=0)


def test_condition_threshold_is_the_one_steer_condition_picks() -> None:
    """Chosen on 56 of data/topic-labelled.jsonl's prompts (the command's defaults); the recipe
    runs on data/topic-prompts.txt, which shares none of them (tests/test_data_splits.py)."""
    recipe = RECIPES / "conditional-steering.yaml"
    result = find_condition(recipe, RECIPES / "data" / "topic-labelled.jsonl")
    when = load_recipe(recipe).recipe.interventions[0].when
    assert when is not None
    best = result.best
    assert (best.layer, best.compare) == (when.layer, when.compare)
    # The threshold is the midpoint of two cosine scores (|s| <= 1, float32 noise ~1e-6 from
    # machine to machine) rounded to 4 decimals: another CPU can land across a rounding
    # boundary, one unit of the 4th decimal away, never more.
    assert best.threshold == pytest.approx(when.threshold, abs=1e-4 + 1e-9)
