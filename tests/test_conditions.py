"""`when:` conditions (CAST) against an independent reference, and the must-show numbers.

Reference: plain PyTorch forward hooks on the Hugging Face model, each prompt alone: the hook on
the condition's block reads its output at step 0, averages it over the prompt's tokens after the
tokenizer's leading marker, takes the cosine with the condition vector, and adds the steering
vector (on this and every later step) only when the cosine is above the threshold.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch

from recipe_engine.api import (
    CompiledRecipe,
    compile_recipe,
    find_condition,
    load_recipe,
    run_recipe,
    validate_file,
)
from tests.conftest import RECIPES
from tests.support.float_tolerance import tiny_logits_tolerance

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RECIPE = RECIPES / "conditional-steering.yaml"
LABELLED = RECIPES / "data" / "topic-labelled.jsonl"
FOOD = 6  # the first six prompts of data/topic-prompts.txt are about food


@pytest.fixture(scope="module")
def compiled() -> CompiledRecipe:
    return compile_recipe(load_recipe(RECIPE))


def _positive_mass(logits: torch.Tensor, ids: list[int]) -> torch.Tensor:
    return torch.softmax(logits.float(), dim=-1)[:, ids].sum(dim=-1)


def _ids(compiled: CompiledRecipe, words: list[str]) -> list[int]:
    tok = compiled.model.tokenizer
    return sorted({tok.convert_tokens_to_ids(t) for w in words for t in (w, "Ġ" + w)} - {None})


@contextmanager
def _reference_hook(
    compiled: CompiledRecipe, threshold: float, strength: float
) -> Iterator[dict[str, Any]]:
    """Hook on block 0's output: the CAST rule restated in plain PyTorch."""
    condition = compiled.vectors["food_topic"].tensor.float()
    steer = compiled.vectors["sentiment"].tensor.float()
    state: dict[str, Any] = {"fired": None, "score": None}
    block = dict(compiled.model.hf.named_modules())["transformer.h.0"]

    def post(module: Any, args: Any, output: Any) -> Any:
        h = output[0] if isinstance(output, tuple) else output
        if state["fired"] is None:  # step 0: the whole prompt
            pooled = h[0, 1:].mean(dim=0)  # token 0 is the tokenizer's <|endoftext|>
            score = float(pooled @ condition / (pooled.norm() * condition.norm()))
            state.update(score=score, fired=score > threshold)
        if not state["fired"]:
            return output
        new = h + strength * steer
        return (new, *output[1:]) if isinstance(output, tuple) else new

    handle = block.register_forward_hook(post)
    try:
        yield state
    finally:
        handle.remove()


def test_the_recipe_validates_and_the_condition_gates_per_row(compiled: CompiledRecipe) -> None:
    assert validate_file(RECIPE).ok
    report = run_recipe(compiled)
    fired = [p.conditions[0].fired for p in report.prompts]
    assert fired == [True] * FOOD + [False] * (len(fired) - FOOD)


def test_engine_equals_the_hook_reference_per_prompt(compiled: CompiledRecipe) -> None:
    report = run_recipe(compiled)
    steered = report.passes["steered"].next_logits
    tok = compiled.model.tokenizer
    for row, outcome in enumerate(report.prompts):
        with _reference_hook(compiled, 0.2011, 3.0) as state, torch.inference_mode():
            ids = tok(outcome.prompt, return_tensors="pt")
            logits = compiled.model.hf(**ids).logits[0, -1].float()
        assert state["fired"] == outcome.conditions[0].fired
        # a cosine (|s| <= 1) of 192-wide means: 1e-5 is ~84 ulps of 1, over sqrt(768) ~ 28
        assert outcome.conditions[0].scores[0] == pytest.approx(state["score"], abs=1e-5)
        tolerance = tiny_logits_tolerance(logits)  # batch of 14 vs one prompt: summation order
        torch.testing.assert_close(steered[row], logits, atol=tolerance, rtol=0)


def test_must_show_food_up_others_bit_identical(compiled: CompiledRecipe) -> None:
    report = run_recipe(compiled)
    base, steered = report.passes["baseline"].next_logits, report.passes["steered"].next_logits
    ids = _ids(compiled, ["great", "wonderful", "excellent", "lovely", "fantastic", "amazing"])
    delta = _positive_mass(steered, ids) - _positive_mass(base, ids)
    assert float(delta[:FOOD].mean()) >= 0.4, delta
    assert float(delta[FOOD:].abs().max()) < 0.02
    # rows where the condition fails are the unsteered run, bit for bit
    assert torch.equal(steered[FOOD:], base[FOOD:])


def test_generation_holds_the_step0_gate_on_every_step(compiled: CompiledRecipe) -> None:
    loaded = load_recipe(RECIPE, overrides=["run.mode=generate", "run.generation.max_new_tokens=6"])
    report = run_recipe(compile_recipe(loaded))
    tok = compiled.model.tokenizer
    for outcome, tokens in zip(report.prompts, report.passes["steered"].generated, strict=True):
        with _reference_hook(compiled, 0.2011, 3.0), torch.inference_mode():
            ids = tok(outcome.prompt, return_tensors="pt")
            out = compiled.model.hf.generate(
                **ids, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id
            )
        expected = [
            t for t in out[0, ids["input_ids"].shape[1] :].tolist() if t != tok.eos_token_id
        ]
        assert tokens == expected[: len(tokens)] and len(tokens) >= 1
    for outcome in report.prompts[FOOD:]:
        assert outcome.steered.continuation == outcome.baseline.continuation


@pytest.mark.parametrize(
    ("when", "fires"),
    [
        ("{not: {vector: food_topic, layer: 0, threshold: 0.2011}}", "others"),
        (
            "{all: [{vector: food_topic, layer: 0, threshold: 0.2011}, "
            "{not: {vector: food_topic, layer: 0, threshold: 0.2011}}]}",
            "none",
        ),
        (
            "{any: [{vector: food_topic, layer: 0, threshold: 0.2011}, "
            # a leaf that (practically) never fires; cosine < -2 is impossible, so validation
            # refuses it (condition-never-fires)
            "{vector: food_topic, layer: 0, compare: below, threshold: -0.999}]}",
            "food",
        ),
    ],
)
def test_conditions_combine(when: str, fires: str) -> None:
    report = run_recipe(load_recipe(RECIPE, overrides=[f"interventions.0.when={when}"]))
    fired = [p.conditions[0].fired for p in report.prompts]
    n = len(fired)
    expected = {
        "others": [False] * FOOD + [True] * (n - FOOD),
        "none": [False] * n,
        "food": [True] * FOOD + [False] * (n - FOOD),
    }[fires]
    assert fired == expected
    base, steered = report.passes["baseline"].next_logits, report.passes["steered"].next_logits
    for row, on in enumerate(fired):
        assert torch.equal(base[row], steered[row]) != on


def test_search_finds_the_condition_with_heldout_f1_at_least_09(tmp_path: Path) -> None:
    result = find_condition(RECIPE, LABELLED, heldout=0.3, seed=0)
    assert result.heldout > 0 and result.tuning > 0
    assert result.heldout_result.f1 >= 0.9
    assert result.best.layer == 0 and result.best.compare == "above"
    # what the search scored is what the run scores: the run prompts through both paths
    report = run_recipe(compile_recipe(load_recipe(RECIPE)))
    prompts = [p.prompt for p in report.prompts]
    labelled = tmp_path / "run.jsonl"
    labelled.write_text(
        "\n".join(f'{{"text": "{p}", "label": {int(i < FOOD)}}}' for i, p in enumerate(prompts))
    )
    again = find_condition(RECIPE, labelled, heldout=0.0, layers=["0"])
    searched = [s for s, _ in again.scores[0]]
    ran = [p.conditions[0].scores[0] for p in report.prompts]
    assert searched == pytest.approx(ran, abs=1e-5)


def test_precision_recall_f1_by_hand() -> None:
    from recipe_engine.sweep.condition import measure

    # fires on 0.9, 0.8, 0.3: two true positives, one false positive, one miss
    cell = measure([0.9, 0.8, 0.3, 0.1, 0.05], [1, 1, 0, 1, 0], "above", 0.2, 0)
    assert (cell.precision, cell.recall) == pytest.approx((2 / 3, 2 / 3))
    assert cell.f1 == pytest.approx(2 / 3)
    below = measure([0.9, 0.1], [0, 1], "below", 0.5, 0)
    assert (below.precision, below.recall, below.f1) == (1.0, 1.0, 1.0)


BAD = """\
version: 1
name: bad
model: {{id: builtin:tiny-sentiment}}
vectors:
  v: {{kind: random, seed: 0}}
interventions:
  - vector: v
    layers: 0
    when: {when}
run:
  mode: {mode}
  prompts: [hi]
"""


@pytest.mark.parametrize(
    ("when", "mode", "code", "pointer"),
    [
        ("{vector: v, layer: 2, threshold: 0}", "trace", "condition-after-target", "/layer"),
        ("{vector: w, layer: 0, threshold: 0}", "trace", "undefined-vector", "/vector"),
        ("{vector: v, layer: 9, threshold: 0}", "trace", "layer-range", "/layer"),
        ("{vector: v, layer: 0, threshold: 0}", "edit", "condition-unsupported", ""),
        ("{all: []}", "trace", "", ""),
    ],
)
def test_validation_names_the_line(
    write: Any, when: str, mode: str, code: str, pointer: str
) -> None:
    path = write("bad.yaml", BAD.format(when=when, mode=mode))
    result = validate_file(path)
    assert not result.ok
    if code:
        errors = [d for d in result.errors if d.code == code]
        assert errors, [d.format() for d in result.errors]
        assert errors[0].pointer == "/interventions/0/when" + pointer
        assert errors[0].format().startswith(f"{path.name}:") or ":" in errors[0].format()


PROBE = """\
version: 1
name: probe-condition
model: {id: builtin:tiny-sentiment}
vectors:
  mood: {kind: probe, data: data/sentiment.jsonl, layer: 0, position: mean, test_fraction: 0.25}
interventions:
  - vector: mood
    layers: 1
    strength: 0.5
    when: {vector: mood, layer: 0, score: probability, compare: above, threshold: 0.5}
run:
  mode: trace
  prompts: {file: data/sentiment.jsonl}
"""


def test_a_probes_probability_gates_like_its_logistic_decision(write: Any) -> None:
    """score: probability is sigmoid(w . a + b) of the probe's own fit: it fires on the
    positive reviews of the probe's data, and its value equals that formula on activations read
    by a plain hook."""
    data = (RECIPES / "data" / "sentiment.jsonl").read_text()
    write("data/sentiment.jsonl", data)
    compiled = compile_recipe(load_recipe(write("probe.yaml", PROBE)))
    report = run_recipe(compiled)
    import json

    rows = [json.loads(line) for line in data.split("\n") if line]
    fired = [p.conditions[0].fired for p in report.prompts]
    agree = sum(f == bool(r["label"]) for f, r in zip(fired, rows, strict=True)) / len(rows)
    assert agree >= 0.9
    info = compiled.vectors["mood"].provenance
    direction = compiled.vectors["mood"].tensor.float()
    u = direction / direction.norm()
    block = dict(compiled.model.hf.named_modules())["transformer.h.0"]
    seen: list[torch.Tensor] = []
    handle = block.register_forward_hook(lambda m, a, out: seen.append(out[0, 1:].mean(dim=0)))
    try:
        tok = compiled.model.tokenizer
        for outcome in report.prompts[:6]:
            with torch.inference_mode():
                compiled.model.hf(**tok(outcome.prompt, return_tensors="pt"))
            pooled = seen.pop()
            expected = torch.sigmoid(info["logit_scale"] * (pooled @ u) + info["logit_bias"])
            assert outcome.conditions[0].scores[0] == pytest.approx(float(expected), abs=1e-4)
    finally:
        handle.remove()
