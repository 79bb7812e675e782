"""The real-model gallery (recipes/real/) on SmolLM2-135M-Instruct: each technique's effect,
asserted with margins on test prompts disjoint from the tuning prompts its settings were
chosen on (recipes/real/data/tuning-*.txt vs test-*.txt). The numbers are the README's table;
they are printed in pytest's summary ("real-model numbers")."""

from __future__ import annotations

import pytest

from recipe_engine.api import load_recipe, run_recipe
from tests.conftest import RECIPES
from tests.helpers import REAL_MODEL_NUMBERS

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("smollm2")]

POSITIVE = ("great", "wonderful", "amazing", "beautiful", "fantastic", "perfect", "lovely")


def _run(name: str):  # type: ignore[no-untyped-def]
    report = run_recipe(load_recipe(RECIPES / "real" / name))
    for metric in report.metrics:
        before = "-" if metric.baseline is None else f"{metric.baseline:.4f}"
        REAL_MODEL_NUMBERS.append(f"{name}: {metric.name} {before} -> {metric.steered:.4f}")
    return report


def _disjoint(tuning: str, test: str) -> None:
    data = RECIPES / "real" / "data"
    lines = [
        set((data / n).read_text(encoding="utf-8").splitlines()) - {""} for n in (tuning, test)
    ]
    assert lines[0] and lines[1] and not lines[0] & lines[1]


def test_tuning_and_test_prompts_are_disjoint() -> None:
    _disjoint("tuning-openings.txt", "test-openings.txt")
    _disjoint("tuning-contexts-positive.txt", "test-contexts-positive.txt")


def test_activation_addition() -> None:
    report = _run("activation-addition.yaml")
    positive = report.metric("token_prob:positive")
    assert positive.steered >= 1.2 * positive.baseline
    assert report.metric("token_prob:negative").delta <= 0.0


def test_every_step_generation() -> None:
    report = _run("generate-every-step.yaml")
    assert report.metric("token_prob:positive").delta > 0.0
    steered = [p.steered.continuation or "" for p in report.prompts]
    baseline = [p.baseline.continuation or "" for p in report.prompts]
    count = [sum(any(w in s for w in POSITIVE) for s in texts) for texts in (baseline, steered)]
    REAL_MODEL_NUMBERS.append(f"generate-every-step: continuations with a positive word {count}")
    for before, after in zip(baseline, steered, strict=True):
        REAL_MODEL_NUMBERS.append(f"  baseline {before!r}\n  steered  {after!r}")
    assert count[1] > count[0]


def test_persistent_edit() -> None:
    assert _run("persistent-edit.yaml").metric("token_prob:positive").delta > 0.0


def test_direction_ablation_removes_the_context_sentiment() -> None:
    positive = _run("direction-ablation.yaml").metric("token_prob:positive")
    assert positive.steered <= 0.8 * positive.baseline


def test_probe_direction() -> None:
    report = _run("probe-direction.yaml")
    accuracy = report.vectors["probe_dir"]["test_accuracy"]
    REAL_MODEL_NUMBERS.append(f"probe-direction: held-out accuracy {accuracy}")
    assert accuracy >= 0.75
    positive = report.metric("token_prob:positive")
    assert positive.steered >= 1.2 * positive.baseline


def test_vector_analysis_names_positive_words() -> None:
    report = _run("vector-analysis.yaml")
    tokens = report.vectors["sentiment"]["tokens"]
    boosted = [t.strip().lower() for t, _ in tokens["lens"]["boosted"]]
    suppressed = [t.strip().lower() for t, _ in tokens["lens"]["suppressed"]]
    REAL_MODEL_NUMBERS.append(f"vector-analysis: boosted {boosted}, suppressed {suppressed}")
    assert boosted and suppressed
