"""Issue 24, items 5, 6, 8, 11, 12, 14 and 15: recipes that validated and then failed (or ran
wrong) and messages that named the wrong thing. Each test failed on the code before the fix; the
fixtures under tests/data/invalid/ (instruction_layer_range, condition_never_fires,
condition_site, judge_unknown_builtin, marker_not_found, position_needs_chat) cover the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from recipe_engine.errors import UsageError
from recipe_engine.pipeline import load_recipe
from recipe_engine.sweep.condition_scores import template_leaf
from recipe_engine.validate import validate_file
from tests.conftest import MINIMAL
from tests.helpers import codes, run_steer

HEAD = "version: 1\nname: t\nmodel: {id: builtin:tiny-sentiment}\n"


def _messages(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [d.format() for d in result.diagnostics]


# -- item 5: the instruction metric's layer ------------------------------------------------------


@pytest.mark.parametrize(("layer", "ok"), [(7, False), (100, False), (-5, False), (-4, True)])
def test_instruction_metric_layer_is_checked_against_the_model(write, layer: int, ok: bool) -> None:  # type: ignore[no-untyped-def]
    text = HEAD + (
        "vectors: {r: {kind: random}}\ninterventions: [{vector: r, layers: 1}]\n"
        "run: {mode: generate, prompts: [hi]}\n"
        f"report:\n  metrics:\n    - {{kind: instruction, layer: {layer}}}\n"
    )
    result = validate_file(write("i.yaml", text))
    assert codes(result) == ([] if ok else ["layer-range"])
    if not ok:
        assert result.diagnostics[0].location.line == 9  # type: ignore[union-attr]
        assert result.diagnostics[0].pointer == "/report/metrics/0/layer"


# -- item 6: conditions that cannot fire -----------------------------------------------------------


def _when(write, leaf: str, vectors: str = "topic: {kind: random}"):  # type: ignore[no-untyped-def]
    text = HEAD + (
        f"vectors:\n  {vectors}\n"
        f"interventions:\n  - {{vector: topic, layers: 1, when: {leaf}}}\n"
        "run: {mode: generate, prompts: [hi]}\n"
    )
    return validate_file(write("w.yaml", text))


@pytest.mark.parametrize(
    ("leaf", "expected"),
    [
        ("{vector: topic, layer: 0, threshold: 2.0}", ("condition-never-fires", "error")),
        ("{vector: topic, layer: 0, threshold: 1.0}", ("condition-never-fires", "error")),
        (
            "{vector: topic, layer: 0, compare: below, threshold: -1.5}",
            ("condition-never-fires", "error"),
        ),
        ("{vector: topic, layer: 0, threshold: -3}", ("condition-always-fires", "warning")),
        ("{vector: topic, layer: 0, threshold: 0.99}", None),
        ("{vector: topic, layer: 0, score: projection, threshold: 40}", None),  # unbounded
    ],
)
def test_impossible_thresholds_per_comparator(write, leaf: str, expected) -> None:  # type: ignore[no-untyped-def]
    found = [(d.code, d.severity) for d in _when(write, leaf).diagnostics]
    assert found == ([expected] if expected else [])


def test_probability_lies_between_zero_and_one(write, repo_dir: Path) -> None:  # type: ignore[no-untyped-def]
    rows = [{"text": t, "label": i % 2} for i, t in enumerate(["a", "b", "c", "d"])]
    write("d.jsonl", "\n".join(json.dumps(r) for r in rows))
    vectors = "topic: {kind: probe, data: d.jsonl, layer: 0}"
    for threshold, compare in ((1.0, "above"), (0.0, "below")):
        leaf = (
            f"{{vector: topic, layer: 0, score: probability, compare: {compare}, "
            f"threshold: {threshold}}}"
        )
        assert codes(_when(write, leaf, vectors)) == ["condition-never-fires"]


@pytest.mark.parametrize(
    ("built", "read", "bad"),
    [("resid_post", "heads", True), ("heads", "resid_post", True), ("resid_pre", "mlp_out", False)],
)
def test_condition_site_must_be_the_vectors_space(write, built: str, read: str, bad: bool) -> None:  # type: ignore[no-untyped-def]
    vectors = (
        f"topic: {{kind: contrastive, positive: [pizza], negative: [car], layer: 0, site: {built}}}"
    )
    result = _when(write, f"{{vector: topic, layer: 0, site: {read}, threshold: 0.2}}", vectors)
    found = [c for c in codes(result) if c == "condition-site"]
    assert found == (["condition-site"] if bad else [])


def test_when_vector_typo_gets_a_suggestion(write) -> None:  # type: ignore[no-untyped-def]
    vectors = "topic: {kind: random}\n  food_topic: {kind: random}"
    result = _when(write, "{vector: food_topik, layer: 0, threshold: 0.2}", vectors)
    (undefined,) = [d for d in result.diagnostics if d.code == "undefined-vector"]
    assert undefined.message.endswith("did you mean 'food_topic'?")


# -- item 8: an SAE's hook against the model and the intervention ----------------------------------


def _sae(write, repo_dir: Path, hook: str, steer: str):  # type: ignore[no-untyped-def]
    (repo_dir / "sae").mkdir(exist_ok=True)
    save_file({"W_dec": torch.randn(8, 192)}, str(repo_dir / "sae" / "sae_weights.safetensors"))
    (repo_dir / "sae" / "cfg.json").write_text(json.dumps({"hook_name": hook}))
    text = HEAD + (
        "vectors:\n  f: {kind: sae_feature, path: sae/sae_weights.safetensors, feature: 1}\n"
        f"interventions:\n  - {{vector: f, {steer}}}\n"
        "run: {mode: trace, prompts: [hi]}\n"
    )
    return validate_file(write("s.yaml", text))


@pytest.mark.parametrize(
    ("hook", "steer", "expected"),
    [
        ("blocks.9.hook_resid_post", "layers: 1", [("sae-hook-layer", "error")]),
        ("blocks.1.hook_resid_pre", "layers: 1, site: resid_post",
         [("sae-hook-mismatch", "warning")]),
        ("blocks.1.hook_resid_post", "layers: 2", [("sae-hook-mismatch", "warning")]),
        ("blocks.1.hook_resid_post", "layers: 1, site: heads", [("sae-hook-site", "error")]),
        # the same point of the forward pass, spelled two ways: block 0's output is block 1's input
        ("blocks.1.hook_resid_pre", "layers: 0, site: resid_post", []),
        ("blocks.1.hook_resid_post", "layers: -3", []),
        ("blocks.2.hook_mlp_out", "layers: 2, site: mlp_out", []),
    ],
)  # fmt: skip
def test_sae_hook_is_checked_against_model_and_intervention(
    write, repo_dir: Path, hook: str, steer: str, expected: list[tuple[str, str]]
) -> None:  # type: ignore[no-untyped-def]
    result = _sae(write, repo_dir, hook, steer)
    assert [(d.code, d.severity) for d in result.diagnostics] == expected


def test_sae_layout_says_the_sae_files_are_at_fault(write, repo_dir: Path) -> None:  # type: ignore[no-untyped-def]
    result = _sae(write, repo_dir, "blocks.0.hook_resid_mid", "layers: 0")
    (found,) = result.diagnostics
    assert found.code == "sae-layout"
    assert found.message.startswith(
        "the SAE at sae/sae_weights.safetensors is not in sae-lens's layout: its cfg.json "
        "hook_name 'blocks.0.hook_resid_mid' is no hook point the engine steers"
    )


# -- item 11: judge references ---------------------------------------------------------------------


def test_judge_builtin_is_checked_like_model_id(write) -> None:  # type: ignore[no-untyped-def]
    text = HEAD + (
        "vectors: {r: {kind: random}}\ninterventions: [{vector: r, layers: 1}]\n"
        "run: {mode: generate, prompts: [hi]}\n"
        'report: {metrics: [{kind: instruction, judge: "builtin:tiny-sentimnt"}]}\n'
    )
    (found,) = validate_file(write("j.yaml", text)).diagnostics
    assert (found.code, found.pointer) == ("unknown-builtin", "/report/metrics/0/judge")
    assert found.message.endswith("did you mean 'tiny-sentiment'?")


# -- item 12: {after: TEXT} markers ----------------------------------------------------------------


def _marker_recipe(prompts: str) -> str:
    return HEAD + (
        "vectors: {r: {kind: random}}\n"
        'interventions:\n  - {vector: r, layers: 1, positions: {after: "The new phone is"}}\n'
        f"run:\n  mode: trace\n  prompts: {prompts}\n"
    )


def test_marker_missing_from_an_inline_conversation_warns(write) -> None:  # type: ignore[no-untyped-def]
    chat = '[{messages: [{role: user, content: "The phone is new"}]}]'
    result = validate_file(write("m.yaml", _marker_recipe(chat)))
    assert [(d.code, d.severity) for d in result.diagnostics] == [
        ("marker-not-in-messages", "warning")
    ]


def test_marker_missing_from_a_prompt_file_names_file_line_and_intervention(
    write, repo_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    write("phones.txt", "The new phone is great\n\nThe phone is new\n")
    path = write("m.yaml", _marker_recipe("{file: phones.txt}"))
    assert validate_file(path).ok  # a file is read by the run
    done = run_steer("run", "m.yaml", cwd=repo_dir)
    assert done.returncode == 1, done.stderr  # an invalid recipe input (was exit 2)
    assert done.stderr.strip() == (
        "m.yaml:9:19: /run/prompts/file: /interventions/0/positions (m.yaml:6) steers the tokens "
        "after 'The new phone is', but prompt 2 of /run/prompts (phones.txt:3) does not contain "
        "that text as the model reads it: 'The phone is new'; add it to the prompt or fix the "
        "marker [marker-not-found]"
    )


def test_marker_missing_from_vector_data_names_the_vector(write) -> None:  # type: ignore[no-untyped-def]
    write("pos.txt", "good (\nbad\n")
    text = HEAD + (
        "vectors:\n  k: {kind: contrastive, positive: {file: pos.txt}, negative: ['bad ('], "
        'layer: 1, position: {after: "("}}\n'
        "interventions: [{vector: k, layers: 1}]\nrun: {mode: trace, prompts: [hi]}\n"
    )
    done = run_steer("run", str(write("v.yaml", text)))
    assert done.returncode == 1, done.stderr
    assert "/vectors/k/position: " in done.stderr and "does not contain '('" in done.stderr
    assert "of its batch" not in done.stderr


# -- item 14: role read positions on plain text ----------------------------------------------------


@pytest.mark.parametrize(
    ("data", "bad"),
    [("[I love it]", True), ("{file: pos.txt}", True), ("{file: pos.jsonl}", False)],
)
def test_role_position_on_plain_text_data(write, data: str, bad: bool) -> None:  # type: ignore[no-untyped-def]
    write("pos.txt", "I love it\n")
    write("pos.jsonl", json.dumps({"messages": [{"role": "user", "content": "I love it"}]}))
    text = HEAD + (
        f"vectors:\n  m: {{kind: contrastive, positive: {data}, negative: {data}, layer: 1, "
        "position: user}\ninterventions: [{vector: m, layers: 1}]\n"
        "run: {mode: trace, prompts: [hi]}\n"
    )
    assert codes(validate_file(write("p.yaml", text))) == (["position-needs-chat"] if bad else [])


# -- item 15: did-you-mean and messages that name the wrong thing ----------------------------------


def test_position_typo_gets_a_suggestion_and_the_full_list(write) -> None:  # type: ignore[no-untyped-def]
    text = (
        MINIMAL
        + "vectors: {r: {kind: random}}\n"
        + ("interventions: [{vector: r, layers: 1, positions: asistant}]\n")
    )
    (found,) = validate_file(write("a.yaml", text)).diagnostics
    assert found.message == (
        "'positions': 'asistant' is not valid here; expected all, prompt, generated, last, "
        'system, user, assistant, {after: TEXT}, a list of indices, or a slice like "2:"; did '
        "you mean 'assistant'?"
    )


def test_prompt_for_prompts_gets_a_suggestion_in_a_group_and_at_the_top(write) -> None:  # type: ignore[no-untyped-def]
    group = MINIMAL.replace('prompts: ["hello"]', "prompts:\n    - {name: g, prompt: [hello]}")
    messages = [d.message for d in validate_file(write("g.yaml", group)).diagnostics]
    assert "unknown key 'prompt'; did you mean 'prompts'?" in messages
    top = MINIMAL + "prompt: [hello]\n"
    messages = [d.message for d in validate_file(write("t.yaml", top)).diagnostics]
    assert messages == ["unknown key 'prompt'; did you mean 'run.prompts' (under `run:`)?"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            {"messages": [{"role": "user", "contnet": "hi"}]},
            "messages[0]: unknown key 'contnet'; did you mean 'content'?",
        ),
        (
            {"messages": [{"role": "user", "content": "hi"}], "extra": 1},
            "a conversation: unknown key 'extra' (allowed: messages)",
        ),
    ],
)
def test_unknown_keys_in_chat_jsonl_lines_are_errors(write, line: dict, message: str) -> None:  # type: ignore[no-untyped-def,type-arg]
    good = {"messages": [{"role": "user", "content": "hi"}]}
    write("c.jsonl", json.dumps(good) + "\n" + json.dumps(line) + "\n")
    text = MINIMAL.replace('prompts: ["hello"]', "prompts: {file: c.jsonl}")
    (found,) = validate_file(write("c.yaml", text)).diagnostics
    assert found.code == "prompt-file-invalid"
    assert found.message == f"c.jsonl: line 2: {message}"


def test_condition_intervention_out_of_range_says_so(write) -> None:  # type: ignore[no-untyped-def]
    text = HEAD + (
        "vectors: {t: {kind: random}}\n"
        "interventions: [{vector: t, layers: 1, when: {vector: t, layer: 0, threshold: 0.2}}]\n"
        "run: {mode: generate, prompts: [hi]}\n"
    )
    recipe = load_recipe(write("c.yaml", text)).recipe
    with pytest.raises(UsageError) as caught:
        template_leaf(recipe, 3)
    assert str(caught.value) == (
        "--intervention 3 is out of range: the recipe has 1 intervention (index 0)"
    )


def test_a_flags_diagnostic_names_the_flag(write) -> None:  # type: ignore[no-untyped-def]
    text = MINIMAL + "interventions: [{op: zero, layers: 1, site: heads, heads: [0]}]\n"
    done = run_steer("run", str(write("h.yaml", text)), "--controls", "2")
    assert done.returncode == 1
    assert done.stderr.startswith("command line (--controls 2): /report/controls: ")
    assert "--set" not in done.stderr
