"""The evaluation fields are validated torch-free, each mistake at its line with a code."""

from __future__ import annotations

import pytest

from recipe_engine.api import validate_file

BASE = """\
version: 1
name: e
model: {id: "builtin:tiny-sentiment"}
vectors:
  s: {kind: contrastive, positive: [good], negative: [bad], layer: 0}
  r: {kind: random}
interventions:
  - {vector: s, op: add, layers: 0, strength: 1.0}
"""


@pytest.mark.parametrize(
    ("tail", "code", "line"),
    [
        (
            "run: {mode: trace, prompts: [a]}\nreport: {metrics: [{kind: fluency}]}\n",
            "metric-mode",
            10,
        ),
        (
            "run: {prompts: [a], backend: vllm}\nreport: {metrics: [{kind: fluency}]}\n",
            "metric-backend",
            10,
        ),
        (
            "run: {prompts: [a], samples: 3}\n",
            "samples-need-sampling",
            9,
        ),
        ("run: {prompts: [a]}\nreport: {metrics: [{kind: concept}]}\n", "concept-source", 10),
        (
            "run: {prompts: [a]}\nreport: {metrics: [{kind: concept, classifier: j}]}\n",
            "concept-label",
            10,
        ),
        (
            "run: {prompts: [a]}\nreport: {metrics: [{kind: concept, classifier: j, label: P}]}\n",
            "file-not-found",
            10,
        ),
        (
            "run: {prompts: [a]}\nreport: {metrics: [{kind: concept, probe: t}]}\n",
            "unknown-vector",
            10,
        ),
        (
            "run: {prompts: [a]}\nreport: {metrics: [{kind: concept, probe: r}]}\n",
            "concept-probe-layer",
            10,
        ),
    ],
)
def test_evaluation_mistakes_are_reported_at_their_line(
    write, tail: str, code: str, line: int
) -> None:  # type: ignore[no-untyped-def]
    result = validate_file(write("e.yaml", BASE + tail))
    errors = [d for d in result.errors if d.code == code]
    assert errors, [d.format() for d in result.diagnostics]
    assert errors[0].location is not None and errors[0].location.line == line


def test_controls_need_an_intervention_with_a_vector(write) -> None:  # type: ignore[no-untyped-def]
    text = BASE.replace("{vector: s, op: add, layers: 0, strength: 1.0}", "{op: zero, layers: 0}")
    text += "run: {prompts: [a]}\nreport: {controls: {random: 8}}\n"
    result = validate_file(write("e.yaml", text))
    assert [d.code for d in result.errors] == ["controls-need-vector"]


def test_a_valid_evaluation_recipe_passes(write) -> None:  # type: ignore[no-untyped-def]
    text = BASE + (
        "run: {prompts: [a], samples: 2, generation: {do_sample: true, seed: 0}}\n"
        "report:\n  prompt_baseline: Be nice.\n  controls: {random: 8}\n  metrics:\n"
        "    - {kind: concept, probe: s}\n    - {kind: concept, name: w, words: [good]}\n"
        "    - {kind: fluency}\n    - {kind: repetition}\n    - {kind: instruction}\n"
    )
    result = validate_file(write("e.yaml", text))
    assert result.errors == [], [d.format() for d in result.errors]


def test_a_vector_only_a_concept_metric_reads_is_used_and_built(write) -> None:  # type: ignore[no-untyped-def]
    """A judge probe need not steer anything: no unused-vector warning, and it is built (an
    unused one still warns)."""
    from recipe_engine.api import compile_recipe, load_recipe

    text = BASE.replace(
        "  r: {kind: random}\n",
        "  r: {kind: random}\n"
        "  j: {kind: contrastive, positive: [happy], negative: [sad], layer: 1}\n",
    )
    text += "run: {prompts: [a]}\nreport: {metrics: [{kind: concept, probe: j}]}\n"
    path = write("e.yaml", text)
    warned = [d.pointer for d in validate_file(path).warnings if d.code == "unused-vector"]
    assert warned == ["/vectors/r"]
    assert set(compile_recipe(load_recipe(path)).vectors) == {"s", "j"}


CHAT = "{messages: [{role: user, content: Hi}]}"
AS_SYSTEM = "{prompt_baseline: {text: Be nice., as: system}}"


@pytest.mark.parametrize(
    ("tail", "code", "pointer"),
    [
        # a plain-text prompt has no conversation to add a system message to
        (f"run: {{prompts: [a]}}\nreport: {AS_SYSTEM}\n", "prompt-baseline-system", "/as"),
        (
            f"run: {{prompts: {{file: p.txt}}}}\nreport: {AS_SYSTEM}\n",
            "prompt-baseline-system",
            "/as",
        ),
        (
            f"run: {{prompts: [{CHAT}]}}\nreport: {{prompt_baseline: {{text: B, as: sys}}}}\n",
            "invalid-choice",
            "/as",
        ),
        (
            "run: {prompts: [a]}\nreport: {prompt_baseline: {as: prefix}}\n",
            "missing-field",
            "/text",
        ),
        ("run: {prompts: [a]}\nreport: {prompt_baseline: 7}\n", "wrong-type", ""),
    ],
)
def test_prompt_baseline_mistakes_at_their_line(write, tail: str, code: str, pointer: str) -> None:  # type: ignore[no-untyped-def]
    write("p.txt", "a prompt\n")
    text = BASE + tail
    result = validate_file(write("e.yaml", text))
    assert [d.code for d in result.errors] == [code], [d.format() for d in result.diagnostics]
    (error,) = result.errors
    assert error.pointer == "/report/prompt_baseline" + pointer
    assert error.location is not None and error.location.line == text.count("\n")


def test_a_judge_is_checked_like_a_model_reference(write) -> None:  # type: ignore[no-untyped-def]
    tail = "run: {prompts: [a]}\nreport: {metrics: [{kind: instruction, judge: JUDGE}]}\n"
    missing = validate_file(write("e.yaml", BASE + tail.replace("JUDGE", "./nope")))
    assert [(d.code, d.pointer) for d in missing.errors] == [
        ("file-not-found", "/report/metrics/0/judge")
    ]
    write("pickled/config.json", "{}")
    write("pickled/pytorch_model.bin", b"not safetensors")
    pickled = validate_file(write("e.yaml", BASE + tail.replace("JUDGE", "./pickled")))
    assert [d.code for d in pickled.errors] == ["model-not-found"]
    assert "safetensors" in pickled.errors[0].message
    builtin = validate_file(
        write("e.yaml", BASE + tail.replace("JUDGE", "'builtin:tiny-sentiment'"))
    )
    assert builtin.errors == [], [d.format() for d in builtin.errors]


def test_prompt_baseline_forms_that_are_valid(write) -> None:  # type: ignore[no-untyped-def]
    for tail in (
        f"run: {{prompts: [{CHAT}]}}\nreport: {AS_SYSTEM}\n",
        "run: {prompts: [a]}\nreport: {prompt_baseline: {text: B, as: prefix}}\n",
        f"run: {{prompts: [a, {CHAT}]}}\nreport: {{prompt_baseline: {{text: B}}}}\n",
    ):
        result = validate_file(write("e.yaml", BASE + tail))
        assert result.errors == [], [d.format() for d in result.errors]
