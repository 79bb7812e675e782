"""The real-model gallery (recipes/real/) on SmolLM2-135M-Instruct: each technique's effect,
asserted with margins on test prompts disjoint from the tuning prompts its settings were
chosen on (recipes/real/data/tuning-*.txt vs test-*.txt). The numbers are the README's table;
they are printed in pytest's summary ("real-model numbers")."""

from __future__ import annotations

import pytest
import torch

from recipe_engine.api import compile_recipe, load_recipe, run_recipe, run_recipe_tests
from tests.conftest import RECIPES
from tests.helpers import REAL_MODEL_NUMBERS

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("smollm2")]

# Each recipe's claims (the README's table) are its `expect:` block, checked by steer test;
# the checks below are those a claim over one report cannot say.
REAL = RECIPES / "real"
WITH_CLAIMS = sorted(p.name for p in REAL.glob("*.yaml") if "\nexpect:" in p.read_text("utf-8"))


@pytest.mark.parametrize("name", WITH_CLAIMS)
def test_recipe_claims_hold_on_the_test_prompts(name: str) -> None:
    (result,) = run_recipe_tests([REAL / name])
    REAL_MODEL_NUMBERS.extend(f"{name}: {r.line()}" for r in result.results)
    assert result.passed, [r.line() for r in result.results] or result.error


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


def test_every_step_generation_turns_continuations_positive() -> None:
    report = _run("generate-every-step.yaml")  # its mass claim: expect: in the recipe
    steered = [p.steered.continuation or "" for p in report.prompts]
    baseline = [p.baseline.continuation or "" for p in report.prompts]
    count = [sum(any(w in s for w in POSITIVE) for s in texts) for texts in (baseline, steered)]
    REAL_MODEL_NUMBERS.append(f"generate-every-step: continuations with a positive word {count}")
    for before, after in zip(baseline, steered, strict=True):
        REAL_MODEL_NUMBERS.append(f"  baseline {before!r}\n  steered  {after!r}")
    assert count[1] > count[0]


def test_probe_direction_generalizes() -> None:
    report = _run("probe-direction.yaml")
    accuracy = report.vectors["probe_dir"]["test_accuracy"]
    REAL_MODEL_NUMBERS.append(f"probe-direction: held-out accuracy {accuracy}")
    assert accuracy >= 0.75  # its mass claim: expect: in the recipe


def test_vector_analysis_matches_the_unembedding() -> None:
    """The report's token lists equal an independent read: the vector through the final norm
    and lm_head of the plain transformers model (the logit lens), top and bottom 10."""
    compiled = compile_recipe(load_recipe(RECIPES / "real" / "vector-analysis.yaml"))
    report = run_recipe(compiled)
    vector = compiled.vectors["sentiment"].tensor
    hf = compiled.model.hf
    with torch.inference_mode():
        lens = hf.lm_head(hf.model.norm(vector.unsqueeze(0)))[0].float()
    decode = compiled.model.tokenizer.decode
    tokens = report.vectors["sentiment"]["tokens"]["lens"]
    assert [t for t, _ in tokens["boosted"]] == [decode([i]) for i in lens.topk(10).indices]
    assert [t for t, _ in tokens["suppressed"]] == [decode([i]) for i in (-lens).topk(10).indices]
    REAL_MODEL_NUMBERS.append(
        f"vector-analysis: |v| {float(vector.norm()):.1f}, boosted "
        f"{[t for t, _ in tokens['boosted']]}, suppressed {[t for t, _ in tokens['suppressed']]}"
    )


def test_sentiment_eval_negated_vector_moves_the_probe_the_other_way() -> None:
    """The README's SmolLM2 evaluation table: the negated vector scores below the baseline
    (its other claims, outside 8 random controls and the fluency cost, are expect: claims)."""
    report = _run("sentiment-eval.yaml")  # the table's claims: expect: in the recipe
    probe = report.metric("concept:sentiment")
    assert len(probe.controls) == 8 and probe.baseline is not None
    negated = run_recipe(
        load_recipe(
            RECIPES / "real" / "sentiment-eval.yaml",
            # without controls the recipe's control_z claims cannot be checked: dropped too
            overrides=["interventions.0.strength=-1.5", "report.controls=null", "expect=[]"],
        )
    )
    assert negated.metric("concept:sentiment").steered < probe.baseline


def test_sentiment_eval_strength_is_the_tuning_prompts_pick() -> None:
    """Its strength is what `steer eval`'s rule picks on the (disjoint) tuning openings."""
    from recipe_engine.api import evaluate_recipe

    path = RECIPES / "real" / "sentiment-eval.yaml"
    table = evaluate_recipe(
        path,
        methods=["sentiment"],
        fluency_budget=1.5,
        strengths=[1.0, 1.5, 2.0, 3.0],  # the grid its comment names
        tune="data/tuning-openings.txt",
        controls=0,
        prompting=(),
    )
    written = load_recipe(path).recipe.interventions[0]
    assert table.row("sentiment").strength == written.strength
