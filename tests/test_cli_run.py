"""`steer run` and `steer explain` end to end: every example, JSON shape, overrides, exit codes.

Most runs call the CLI's `main()` in this process (the builtin model is then built once); the
failure paths, where what reaches the terminal matters (tracebacks, one-line errors), run the
real `python -m recipe_engine` in a subprocess.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from recipe_engine.cli.main import main
from recipe_engine.format.prompts import PromptFile
from recipe_engine.format.report_spec import TokenProbMetric
from recipe_engine.model_config import read_model_shape
from recipe_engine.validate import validate_file
from tests.conftest import RECIPES
from tests.helpers import run_steer

# The embedded model's examples; the real-model gallery (recipes/real/) loads SmolLM2 and has
# its own tests (test_real_gallery.py), run once per session, not once per CLI call here.
EXAMPLES = sorted(
    p
    for p in RECIPES.rglob("*.yaml")
    if not any(part.startswith("_") or part == "real" for part in p.relative_to(RECIPES).parts)
)
MULTI_LAYER = RECIPES / "multi-layer.yaml"
Write = Callable[[str, str | bytes], Path]  # the `write` fixture of conftest

REPORT_KEYS = {
    "version",
    "warnings",
    "recipe",
    "model",
    "mode",
    "plan",
    "vectors",
    "prompts",
    "metrics",
    "groups",  # issue 24 item 7: the prompt groups' own plans
    "group_metrics",
    "conditions",  # when: fired on how many prompts
    "timing",
}
PLAN_KEYS = {
    "intervention",
    "label",
    "op",
    "layer",
    "site",
    "module",
    "port",
    "heads",
    "head_columns",
    "positions",
    "positions_per_step",
    "vector",
    "vector_norm",
    "strength",
    "when",
}
# README, "Positions, per generation step": what each `positions` form steers at each step.
STEP_TABLE = {
    "all": ("every real prompt token", "the new token"),
    "prompt": ("every real prompt token", "nothing"),
    "generated": ("nothing", "the new token"),
    "last": ("the prompt's last token", "the new token"),
    # chat prompts: the README's table of positions by role
    "assistant": ("assistant turns and the generation prompt", "the new token"),
    "user": ("the text of user turns", "nothing"),
    "system": ("the text of system turns", "nothing"),
}


def steer(*args: str) -> tuple[int, str, str]:
    """Run the CLI in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def run_json(*args: str) -> dict[str, Any]:
    code, out, err = steer("run", *args, "--format", "json")
    assert code == 0, err
    payload: dict[str, Any] = json.loads(out)
    return payload


def explain_json(*args: str) -> dict[str, Any]:
    code, out, err = steer("explain", *args, "--format", "json")
    assert code == 0, err
    payload: dict[str, Any] = json.loads(out)
    return payload


def without_timing(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k != "timing"}


def expected_prompts(path: Path) -> list[str]:
    """The prompts a recipe names, read here from the files (not through the engine)."""
    recipe = validate_file(path).recipe
    assert recipe is not None
    source = recipe.run.prompts
    if isinstance(source, str):
        return [source]
    if isinstance(source, list):
        return list(source)
    assert isinstance(source, PromptFile)
    text = (path.parent / source.file).read_text(encoding="utf-8")
    prompts = [line for line in text.splitlines() if line.strip()]
    if source.file.endswith(".jsonl"):
        prompts = [_builtin_chat(json.loads(line)["messages"]) for line in prompts]
    return prompts[: source.limit] if source.limit else prompts


def _builtin_chat(messages: list[dict[str, str]]) -> str:
    """The embedded model's chat template, written out by hand: "role: text" per line, then
    "assistant:"; a final assistant turn is continued (no newline after it)."""
    text = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
    return text[:-1] if messages[-1]["role"] == "assistant" else text + "assistant:"


def expected_metric_names(path: Path) -> list[str]:
    recipe = validate_file(path).recipe
    assert recipe is not None
    names: list[str] = []
    for metric in recipe.report.metrics:
        if isinstance(metric, TokenProbMetric):
            names.extend(f"token_prob:{name}" for name in metric.tokens)
        elif getattr(metric, "text", None) is not None and metric.kind == "kl_baseline":
            names.append("kl_baseline:text")  # KL over every position of neutral texts
        elif metric.kind == "concept":  # the mean score and the fraction above threshold
            names += [f"concept:{metric.name}", f"concept:{metric.name}:above"]
        elif metric.kind == "repetition":
            names += [f"repetition:distinct-{metric.n}", "repetition:longest"]
        else:
            names.append(metric.kind)
    return names


@pytest.fixture(scope="module")
def json_reports() -> dict[str, dict[str, Any]]:
    """`steer run --format json` of every example, run once for this module."""
    return {path.name: run_json(str(path)) for path in EXAMPLES}


# --- every example runs ------------------------------------------------------------------------


def test_examples_are_found() -> None:
    assert len(EXAMPLES) >= 6
    assert MULTI_LAYER in EXAMPLES


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_run_example_text(path: Path) -> None:
    code, out, err = steer("run", str(path))
    assert code == 0, err
    recipe = validate_file(path).recipe
    assert recipe is not None
    assert out.startswith(f"recipe {recipe.name}")
    prompts = expected_prompts(path)
    assert prompts
    for prompt in prompts:
        assert f"prompt: {prompt!r}" in out
    assert out.count("\nprompt: ") == len(prompts)
    lines = out.splitlines()
    header = [line for line in lines if line.startswith("metric ")]
    names = expected_metric_names(path)
    if names:
        assert len(header) == 1, out
        columns = ["metric", "baseline", "steered", "delta"]
        extra = []  # report.prompt_baseline, report.controls: their columns follow
        if recipe.report.prompt_baseline is not None:
            extra.append("prompting")
        if recipe.report.controls is not None:
            extra += ["controls", "(mean", "+-", "sd)", "z"]
        assert header[0].split() == columns + extra
        table = lines[lines.index(header[0]) + 1 :]
        for name in names:
            (row,) = [line for line in table if line.split()[:1] == [name]]
            cells = row.split()[1:4]
            assert len(row.split()) > 3, row
            for cell in cells:
                if cell != "-":
                    float(cell)  # a number, not garbage
    else:
        assert not header


# --- the JSON report -------------------------------------------------------------------------


def _check_side(side: dict[str, Any], mode: str, top_k: int) -> None:
    assert set(side) == {"continuation", "top_tokens"}
    if mode == "trace":
        assert side["continuation"] is None
    else:
        assert isinstance(side["continuation"], str)
    assert len(side["top_tokens"]) == top_k
    probs = []
    for entry in side["top_tokens"]:
        assert set(entry) == {"token", "id", "prob"}
        assert isinstance(entry["token"], str)
        assert isinstance(entry["id"], int) and not isinstance(entry["id"], bool)
        assert isinstance(entry["prob"], float) and 0.0 <= entry["prob"] <= 1.0
        probs.append(entry["prob"])
    assert probs == sorted(probs, reverse=True)
    ids = [entry["id"] for entry in side["top_tokens"]]
    assert len(set(ids)) == len(ids)


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_run_json_shape(path: Path, json_reports: dict[str, dict[str, Any]]) -> None:
    report = json_reports[path.name]
    recipe = validate_file(path).recipe
    assert recipe is not None
    assert set(report) == REPORT_KEYS
    assert report["version"] == 1
    assert report["warnings"] == []  # every example, at its own settings, is healthy
    assert report["recipe"]["name"] == recipe.name
    assert isinstance(report["recipe"]["path"], str) and report["recipe"]["path"].endswith(
        path.name
    )
    model = report["model"]
    assert set(model) == {"id", "family", "layers", "hidden_size", "heads"}
    assert model["id"] == recipe.model.id
    assert isinstance(model["family"], str)
    shape = read_model_shape(recipe.model.id, None, path.parent)  # from the config, not the run
    assert (model["layers"], model["hidden_size"], model["heads"]) == (
        shape.n_layers,
        shape.hidden_size,
        shape.n_heads,
    )
    assert report["mode"] == recipe.run.mode

    assert isinstance(report["plan"], list) and report["plan"]
    for op in report["plan"]:
        assert set(op) - {"rank"} == PLAN_KEYS  # rank: only a low-rank edit's
        assert ("rank" in op) == (op["op"] == "lowrank")
        assert isinstance(op["strength"], float)
        assert set(op["positions_per_step"]) == {"step 0", "later steps"}

    assert isinstance(report["vectors"], dict)
    used = {item.vector for item in recipe.interventions if item.vector}
    assert used <= set(report["vectors"])
    for info in report["vectors"].values():
        assert isinstance(info["kind"], str)
        assert isinstance(info["norm"], (int, float)) and info["norm"] > 0

    prompts = expected_prompts(path)
    assert [p["prompt"] for p in report["prompts"]] == prompts
    prompting = recipe.report.prompt_baseline is not None  # a third side, its own key
    for outcome in report["prompts"]:
        sides = {"prompt", "baseline", "steered", "group", "conditions"}
        assert set(outcome) == sides | ({"prompting"} if prompting else set())
        gated = [op for op in report["plan"] if op["when"] is not None]
        assert len(outcome["conditions"]) == len({op["intervention"] for op in gated})
        for cond in outcome["conditions"]:
            assert isinstance(cond["fired"], bool) and isinstance(cond["scores"], list)
        _check_side(outcome["steered"], recipe.run.mode, recipe.report.top_tokens)
        if prompting:
            _check_side(outcome["prompting"], recipe.run.mode, recipe.report.top_tokens)
        if recipe.run.compare_baseline:
            assert outcome["baseline"] is not None
            _check_side(outcome["baseline"], recipe.run.mode, recipe.report.top_tokens)
        else:
            assert outcome["baseline"] is None

    assert [m["name"] for m in report["metrics"]] == expected_metric_names(path)
    for metric in report["metrics"]:
        assert {"name", "kind", "baseline", "steered", "delta"} <= set(metric)
        assert isinstance(metric["steered"], float)
        if recipe.run.compare_baseline:
            assert isinstance(metric["baseline"], float)
            assert metric["delta"] == pytest.approx(
                metric["steered"] - metric["baseline"], abs=2e-6
            )

    assert set(report["timing"]) == {"load_s", "vectors_s", "run_s"}
    for value in report["timing"].values():
        assert isinstance(value, (int, float)) and value >= 0 and math.isfinite(value)


@pytest.mark.slow
def test_steering_changes_the_next_token_distribution(
    json_reports: dict[str, dict[str, Any]],
) -> None:
    """The control for the strength-0 test below: the examples as shipped do move the model."""
    report = json_reports["activation-addition.yaml"]
    for outcome in report["prompts"]:
        assert outcome["steered"]["top_tokens"] != outcome["baseline"]["top_tokens"]
    (kl,) = [m for m in report["metrics"] if m["name"] == "kl_baseline"]
    assert kl["steered"] > 1e-3


@pytest.mark.slow
def test_compare_baseline_false_has_no_baseline() -> None:
    report = run_json(
        str(MULTI_LAYER),
        "--set",
        "run.compare_baseline=false",
        "--set",
        "report.metrics=[{kind: logit_diff, positive: [great], negative: [bad]}]",
        "--set",
        "expect=[]",  # the recipe's claims bound metrics this override removes
    )
    assert report["prompts"]
    for outcome in report["prompts"]:
        assert outcome["baseline"] is None
        assert outcome["steered"]["top_tokens"]
    (metric,) = report["metrics"]
    assert metric["baseline"] is None and metric["delta"] is None
    assert isinstance(metric["steered"], float)


# --- --set -----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["activation-addition.yaml", "generate-every-step.yaml", "persistent-edit.yaml"]
)
def test_strength_zero_add_is_a_no_op(name: str) -> None:
    """add with strength 0 adds nothing: steered == baseline, in every mode."""
    shipped = run_json(str(RECIPES / name))
    report = run_json(str(RECIPES / name), "--set", "interventions.0.strength=0")
    assert [op["strength"] for op in report["plan"]] == [0.0] * len(report["plan"])
    assert report["prompts"]
    for outcome in report["prompts"]:
        assert outcome["steered"] == outcome["baseline"]
    for metric in report["metrics"]:
        assert metric["delta"] == 0.0, metric
    # ... while the shipped strength does change something (else the check above is vacuous)
    assert any(o["steered"] != o["baseline"] for o in shipped["prompts"])


@pytest.mark.parametrize(
    "override",
    [
        "interventions.7.strength=1",  # no intervention 7
        "interventions.x.strength=1",  # a list takes indices
        "name.first=1",  # name is a string
        "strength",  # no '='
        "=3",  # empty path
    ],
)
def test_set_with_a_bad_path_is_a_usage_error(override: str) -> None:
    code, out, err = steer("run", str(MULTI_LAYER), "--set", override)
    assert code == 2, (out, err)
    assert out == ""
    assert err.startswith("steer: error: --set")
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_set_with_a_bad_path_in_a_subprocess() -> None:
    done = run_steer("run", str(MULTI_LAYER), "--set", "interventions.3.strength=1")
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert "interventions.3.strength" in done.stderr
    assert "Traceback" not in done.stderr


# --- --out -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_out_writes_the_json_report(tmp_path: Path) -> None:
    out_dir = tmp_path / "results" / "nested"
    code, out, err = steer("run", str(MULTI_LAYER), "--out", str(out_dir))
    assert code == 0, err
    target = out_dir / "multi-layer.json"
    assert target.is_file()
    assert f"wrote {target}" in err
    assert out.startswith("recipe multi-layer")  # the text report is still printed
    assert [p.name for p in out_dir.iterdir()] == ["multi-layer.json"]  # no temp file left
    written = json.loads(target.read_text(encoding="utf-8"))
    printed = run_json(str(MULTI_LAYER))
    assert set(written["timing"]) == {"load_s", "vectors_s", "run_s"}
    assert without_timing(written) == without_timing(printed)


@pytest.mark.slow
def test_out_with_json_format_writes_what_it_prints(tmp_path: Path) -> None:
    code, out, err = steer(
        "run", str(MULTI_LAYER), "--set", "name=renamed", "--format", "json", "--out", str(tmp_path)
    )
    assert code == 0, err
    assert (tmp_path / "renamed.json").read_text(encoding="utf-8") == out


# --- explain ---------------------------------------------------------------------------------


def _multi_layer_source() -> tuple[float, dict[int, float]]:
    data = yaml.safe_load(MULTI_LAYER.read_text(encoding="utf-8"))
    item = data["interventions"][0]
    return float(item["strength"]), {int(k): float(v) for k, v in item["layers"].items()}


@pytest.mark.slow
def test_explain_multi_layer_json() -> None:
    strength, weights = _multi_layer_source()
    assert len(weights) >= 2 and len(set(weights.values())) >= 2  # the example still has weights
    info = explain_json(str(MULTI_LAYER))
    assert info["recipe"] == "multi-layer"
    assert info["mode"] == "trace"
    assert info["model"] == {
        "id": "builtin:tiny-sentiment",
        "family": "gpt2",
        "layers": 4,
        "hidden_size": 192,
        "heads": 4,
        "head_dim": 48,
        "head_dim_from": "hidden_size / heads",
        "blocks": "transformer.h",
        "blocks_why": "the family's dedicated adapter",
    }
    plan = info["plan"]
    assert [op["layer"] for op in plan] == sorted(weights)  # execution order: shallow first
    for op in plan:
        assert set(op) == PLAN_KEYS
        assert op["module"] == f"transformer.h.{op['layer']}"
        assert op["port"] == "output"
        assert op["site"] == "resid_post"
        assert op["op"] == "add"
        assert op["vector"] == "sentiment"
        assert op["vector_norm"] == pytest.approx(info["vectors"]["sentiment"]["norm"], rel=1e-4)
        assert op["strength"] == pytest.approx(strength * weights[op["layer"]])
        assert op["positions_per_step"] == {
            "step 0": "every real prompt token",
            "later steps": "the new token",
        }
    assert info["vectors"]["sentiment"]["shape"] == [192]
    assert info["vectors"]["sentiment"]["kind"] == "contrastive"


@pytest.mark.slow
def test_explain_multi_layer_text() -> None:
    strength, weights = _multi_layer_source()
    code, out, err = steer("explain", str(MULTI_LAYER))
    assert code == 0, err
    assert out.startswith("recipe multi-layer: mode trace")
    model_line = "model builtin:tiny-sentiment [gpt2: 4 layers, width 192, 4 heads x 48"
    assert model_line + " (hidden_size / heads)]" in out
    assert "decoder blocks transformer.h: the family's dedicated adapter" in out
    positions = [out.index(f"-> transformer.h.{layer}.output") for layer in sorted(weights)]
    assert positions == sorted(positions)
    for layer, weight in weights.items():
        assert f"add at layer {layer} resid_post -> transformer.h.{layer}.output" in out
        assert f"strength {strength * weight:g}\n" in out
    assert "step 0 -> every real prompt token; later steps -> the new token" in out
    assert "sentiment: shape [192]" in out


@pytest.mark.slow
def test_explain_weight_override_changes_effective_strength() -> None:
    info = explain_json(
        str(MULTI_LAYER),
        "--set",
        "interventions.0.strength=2",
        "--set",
        "interventions.0.layers.1=0.25",
    )
    assert {op["layer"]: op["strength"] for op in info["plan"]} == {
        0: pytest.approx(2.0),
        1: pytest.approx(0.5),
    }


ORDER_RECIPE = """\
version: 1
name: order
model: {id: builtin:tiny-random}
vectors:
  noise: {kind: random, seed: 1, norm: 1.0}
interventions:
  - {name: a-post-2, vector: noise, op: add, layers: 2, site: resid_post, strength: 0.1}
  - {name: b-mlp-2, vector: noise, op: add, layers: 2, site: mlp_out, strength: 0.1}
  - {name: c-attn-2, vector: noise, op: add, layers: 2, site: attn_out, strength: 0.1}
  - {name: d-pre-2, vector: noise, op: add, layers: 2, site: resid_pre, strength: 0.1}
  - {name: e-heads-2, op: zero, layers: 2, site: heads, heads: [0]}
  - {name: f-post-3-1, vector: noise, op: add, layers: [3, 1], site: resid_post, strength: 0.1}
  - {name: g-post-2, vector: noise, op: scale, layers: 2, site: resid_post, strength: 0.5}
run: {mode: trace, prompts: ["hello"]}
"""


def _forward_event_order() -> dict[tuple[str, str], int]:
    """Order in which module inputs/outputs really happen, from hooks on a forward pass."""
    import torch

    from recipe_engine.resolve.builtin_build import build_builtin

    model, tokenizer = build_builtin("tiny-random")
    events: dict[tuple[str, str], int] = {}

    def record(key: tuple[str, str]) -> Any:
        def hook(*_: Any) -> None:
            events.setdefault(key, len(events))

        return hook

    handles = []
    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_pre_hook(record((name, "input"))))
            handles.append(module.register_forward_hook(record((name, "output"))))
    with torch.no_grad():
        model(**tokenizer("hello", return_tensors="pt"))
    for handle in handles:
        handle.remove()
    return events


@pytest.mark.slow
def test_explain_plan_is_in_execution_order(write: Write) -> None:
    path = write("order.yaml", ORDER_RECIPE)
    plan = explain_json(str(path))["plan"]
    assert [(op["label"], op["layer"]) for op in plan] == [
        ("f-post-3-1", 1),
        ("d-pre-2", 2),
        ("e-heads-2", 2),
        ("c-attn-2", 2),
        ("b-mlp-2", 2),
        ("a-post-2", 2),
        ("g-post-2", 2),  # same module and port as a-post-2: recipe order
        ("f-post-3-1", 3),
    ]
    assert [(op["module"], op["port"]) for op in plan] == [
        ("transformer.h.1", "output"),
        ("transformer.h.2", "input"),
        ("transformer.h.2.attn.c_proj", "input"),
        ("transformer.h.2.attn", "output"),
        ("transformer.h.2.mlp", "output"),
        ("transformer.h.2", "output"),
        ("transformer.h.2", "output"),
        ("transformer.h.3", "output"),
    ]
    # and that order is what a real forward pass does
    events = _forward_event_order()
    keys = [(events[(op["module"], op["port"])], op["intervention"]) for op in plan]
    assert keys == sorted(keys)


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_explain_positions_per_step_follow_the_readme(path: Path) -> None:
    info = explain_json(str(path))
    assert info["plan"]
    for op in info["plan"]:
        steps = op["positions_per_step"]
        assert set(steps) == {"step 0", "later steps"}
        positions = op["positions"]
        if isinstance(positions, str) and positions in STEP_TABLE:
            assert (steps["step 0"], steps["later steps"]) == STEP_TABLE[positions]
        else:  # explicit prompt positions: only at step 0
            assert steps["later steps"] == "nothing"
            assert str(positions) in steps["step 0"]


# --- a layer out of range: exit 1 at the recipe line -------------------------------------------

LAYER_OUT_OF_RANGE = """\
version: 1
name: bad-layer
model: {id: builtin:tiny-random}
vectors:
  noise: {kind: random, seed: 0, norm: 1.0}
interventions:
  - vector: noise
    op: add
    layers: 7
    strength: 1.0
run:
  mode: trace
  prompts: ["hello"]
"""


def _field_location(text: str, needle: str) -> tuple[int, int]:
    """1-based line and column of the value after `needle` in `text`."""
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number, line.index(needle) + len(needle) + 1
    raise AssertionError(needle)


@pytest.mark.parametrize("command", ["run", "explain"])
def test_layer_out_of_range_exits_1_at_the_layers_field(write: Write, command: str) -> None:
    path = write("bad.yaml", LAYER_OUT_OF_RANGE)
    line, col = _field_location(LAYER_OUT_OF_RANGE, "layers: ")
    done = run_steer(command, "bad.yaml", cwd=path.parent)
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    (message,) = done.stderr.strip().splitlines()
    assert message.startswith(f"bad.yaml:{line}:{col}: /interventions/0/layers: ")
    assert "layer 7 out of range" in message
    assert message.endswith("[layer-range]")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("layers", "pointer", "needle"),
    [
        ("[1, 9]", "/interventions/0/layers/1", "layers: [1, "),
        ("-5", "/interventions/0/layers", "layers: "),
        ("{1: 0.5, 12: 1.0}", "/interventions/0/layers/12", "layers: {1: 0.5, "),
    ],
)
@pytest.mark.parametrize("command", ["run", "explain"])
def test_layer_out_of_range_forms(
    write: Write, command: str, layers: str, pointer: str, needle: str
) -> None:
    text = LAYER_OUT_OF_RANGE.replace("layers: 7", f"layers: {layers}")
    path = write("bad.yaml", text)
    line, col = _field_location(text, needle)
    code, out, err = steer(command, str(path), "--format", "json")
    assert code == 1, err
    assert out == ""
    (message,) = err.strip().splitlines()
    assert message.startswith(f"{path}:{line}:{col}: {pointer}: ")
    assert message.endswith("[layer-range]")


# --- runtime failures: exit 3, one line, --debug for the traceback --------------------------

TINY_CONFIG = {
    "model_type": "gpt2",
    "architectures": ["GPT2LMHeadModel"],
    "n_layer": 4,
    "n_embd": 64,
    "n_head": 4,
    "n_positions": 128,
    "vocab_size": 257,
    "bos_token_id": 256,
    "eos_token_id": 256,
}

LOCAL_MODEL_RECIPE = """\
version: 1
name: broken-model
model: {id: ./model}
run:
  mode: trace
  prompts: ["hello"]
"""


@pytest.fixture(params=["missing-weights", "corrupt-weights"])
def broken_model_recipe(request: pytest.FixtureRequest, write: Write) -> Path:
    """A local model folder whose config.json passes validation but that cannot be loaded."""
    write("model/config.json", json.dumps(TINY_CONFIG))
    if request.param == "corrupt-weights":
        write("model/model.safetensors", b"\xff" * 64 + b"not a safetensors file")
    return write("recipe.yaml", LOCAL_MODEL_RECIPE)


def test_broken_model_folder_passes_validation(broken_model_recipe: Path) -> None:
    result = validate_file(broken_model_recipe, check_model=True)
    assert result.ok, [d.format() for d in result.diagnostics]


@pytest.mark.slow
def test_runtime_failure_exits_3_with_one_line(broken_model_recipe: Path) -> None:
    done = run_steer("run", "recipe.yaml", cwd=broken_model_recipe.parent)
    assert done.returncode == 3, done.stderr
    assert done.stdout == ""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("steer: ")
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_runtime_failure_with_debug_shows_the_traceback(broken_model_recipe: Path) -> None:
    done = run_steer("--debug", "run", "recipe.yaml", cwd=broken_model_recipe.parent)
    assert done.returncode == 3, done.stderr
    assert "Traceback (most recent call last)" in done.stderr
    assert "model_loader.py" in done.stderr  # the engine's own frames
