"""Runtime failures: NaN/Inf end a run with exit 3 and a one-line cause; broken but finite
output is a warning; a NaN is never printed as if it were a measurement.

The NaN cases are first shown to be real with a plain PyTorch hook (the same addition on the
Hugging Face module gives non-finite logits), so the engine is not judged against itself.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from recipe_engine.errors import NumericalFailure
from recipe_engine.execute.numerics import require_finite
from recipe_engine.format.positions import ALL_POSITIONS as ALL
from recipe_engine.plan import Plan, PlanOp
from recipe_engine.report.health import GARBAGE_PERPLEXITY_RATIO, GARBAGE_TEXT_KL, garbage_warnings
from recipe_engine.report.metrics import MetricValue
from tests.conftest import RECIPES
from tests.test_cli_run import steer

pytestmark = pytest.mark.slow

ADDITION = str(RECIPES / "activation-addition.yaml")
EVERY_STEP = str(RECIPES / "generate-every-step.yaml")
PERSISTENT = str(RECIPES / "persistent-edit.yaml")


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("steer: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    return lines[0]


def test_the_blow_up_is_real_under_a_plain_hook() -> None:
    """Independent reference: adding 1e38 x v to layer 0's output makes the logits non-finite."""
    from recipe_engine.api import compile_recipe, load_recipe

    compiled = compile_recipe(load_recipe(ADDITION))
    hf, tokenizer = compiled.model.hf, compiled.model.tokenizer
    vector = compiled.vectors["sentiment"].tensor

    def hook(_module: Any, _args: Any, output: Any) -> Any:
        return (
            (output[0] + 1e38 * vector, *output[1:])
            if isinstance(output, tuple)
            else (output + 1e38 * vector)
        )

    handle = hf.transformer.h[0].register_forward_hook(hook)
    try:
        with torch.no_grad():
            logits = hf(**tokenizer(["The weather today is"], return_tensors="pt")).logits
    finally:
        handle.remove()
    assert not bool(torch.isfinite(logits).all())


@pytest.mark.parametrize(
    ("recipe", "extra"),
    [
        (ADDITION, []),
        (EVERY_STEP, []),  # greedy: argmax of NaN would silently pick token 0
        (EVERY_STEP, ["--set", "run.generation.do_sample=true", "--set", "run.generation.seed=1"]),
        (PERSISTENT, []),  # edit mode, sampled: the sampler refuses NaN probabilities
    ],
    ids=["trace", "generate-greedy", "generate-sampled", "edit"],
)
def test_nan_inf_exits_3_with_a_one_line_cause(recipe: str, extra: list[str]) -> None:
    code, out, err = steer("run", recipe, "--set", "interventions.0.strength=1e38", *extra)
    assert code == 3, err
    line = _error_line(err)
    assert "NaN/Inf" in line
    assert "intervention 0" in line and "strength 1e+38" in line and "lower the strength" in line
    assert out == ""  # no report with NaNs in it


def test_float16_overflow_names_the_dtype() -> None:
    code, _, err = steer(
        "run",
        ADDITION,
        "--set",
        "model.dtype=float16",
        "--set",
        "interventions.0.strength=1e5",  # 2.5e6 after |v|: far past float16's 65504
    )
    assert code == 3
    assert "float16" in _error_line(err)


def test_finite_garbage_is_a_warning_in_text_and_json() -> None:
    code, out, err = steer(
        "run", ADDITION, "--set", "interventions.0.strength=300", "--format", "json"
    )
    assert code == 0, err
    report = json.loads(out)
    warnings = report["warnings"]
    assert warnings and all("likely cause: intervention 0" in w for w in warnings)
    assert any("neutral text" in w for w in warnings)
    printed = [line for line in err.splitlines() if line.startswith("steer: warning:")]
    assert len(printed) == len(warnings)


def test_the_demo_at_its_default_strength_has_no_warning() -> None:
    code, out, err = steer("run", ADDITION, "--format", "json")
    assert code == 0, err
    assert json.loads(out)["warnings"] == []
    assert "warning" not in err


def test_a_sweep_records_a_blown_up_cell_and_goes_on(tmp_path: Path) -> None:
    code, out, err = steer(
        "sweep",
        ADDITION,
        "--layers",
        "0",
        "--strengths",
        "3",
        "1e38",
        "--out",
        str(tmp_path),
    )
    assert code == 0, err
    failed = [line for line in out.splitlines() if "(failed)" in line]
    assert len(failed) == 1 and "NaN/Inf" in failed[0] and "nan" not in failed[0]
    assert "recommended: layer 0, strength 3" in out
    data = json.loads((tmp_path / "sweep.json").read_text())
    assert len(data["failures"]) == 1 and "strength 1e+38" in data["failures"][0]
    assert data["recommended"]["strength"] == 3.0
    assert "strength 1e+38" in err


def test_a_sweep_where_every_cell_fails_exits_3(tmp_path: Path) -> None:
    code, _, err = steer(
        "sweep", ADDITION, "--layers", "0", "--strengths", "1e38", "--out", str(tmp_path)
    )
    assert code == 3
    assert "every setting of the sweep failed" in _error_line(err)
    assert not any(tmp_path.iterdir())  # nothing half-written


# -- the rules themselves, on synthetic numbers --------------------------------------------------


def _plan() -> Plan:
    op = PlanOp(0, "add v", "add", 0, "resid_post", "transformer.h.0", "output", ALL, 8.0, "v")
    return Plan([op])


def _metric(name: str, steered: float, baseline: float | None = 0.0) -> MetricValue:
    return MetricValue(name, name.split(":")[0], baseline, steered, {})


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        ([_metric("kl_baseline:text", GARBAGE_TEXT_KL * 1.01)], 1),
        ([_metric("kl_baseline:text", GARBAGE_TEXT_KL * 0.99)], 0),
        ([_metric("perplexity", GARBAGE_PERPLEXITY_RATIO * 2.0 * 1.01, 2.0)], 1),
        ([_metric("perplexity", GARBAGE_PERPLEXITY_RATIO * 2.0 * 0.99, 2.0)], 0),
        ([_metric("kl_baseline", 0.76 * math.log(1000))], 1),
        ([_metric("kl_baseline", 0.74 * math.log(1000))], 0),
        ([_metric("kl_baseline:text", math.nan)], 0),  # NaN is not evidence of anything
        ([_metric("token_prob:positive", 50.0)], 0),
    ],
)
def test_garbage_rules(metrics: list[MetricValue], expected: int) -> None:
    assert len(garbage_warnings(metrics, _plan(), vocab_size=1000)) == expected


def test_no_warning_without_interventions() -> None:
    assert garbage_warnings([_metric("kl_baseline:text", 100.0)], Plan(), 1000) == []


def test_require_finite_counts_the_bad_rows() -> None:
    rows = [torch.zeros(3), torch.tensor([0.0, math.inf, 1.0]), torch.tensor([math.nan])]
    with pytest.raises(NumericalFailure, match=r"2 of 3 generated steps"):
        require_finite(rows, "generated steps", _plan())
    require_finite([torch.zeros(3)], "fine", _plan())  # finite: no error
