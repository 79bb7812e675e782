"""Backends: NDIF's round trip for vector extraction and text metrics, every misconfiguration's
error, what `steer explain` says leaves the machine, and the vLLM specifics that a CPU can
check (the residual stream of fused add-norm layers, per-prompt sampling settings, limits).

The op x mode round trips live in test_engine_parity.py, next to the reference they share.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nnsight
import pytest
import torch

from recipe_engine.api import load_recipe
from recipe_engine.errors import EnvironmentFailure
from recipe_engine.execute.ops import transform
from recipe_engine.execute.runner import score_texts, text_logits
from recipe_engine.execute.steer import apply_plan
from recipe_engine.format.model_spec import ModelSpec
from recipe_engine.format.positions import ALL_POSITIONS as ALL
from recipe_engine.format.run_spec import GenerationSpec
from recipe_engine.plan import Plan, PlanOp
from recipe_engine.resolve.backends.ndif import check_remote
from recipe_engine.resolve.backends.vllm import require_vllm, sampling_params
from recipe_engine.resolve.model_loader import LoadedModel, load_model
from recipe_engine.vectors import build_vectors
from tests.conftest import MINIMAL, RECIPES
from tests.test_cli_run import steer

Write = Any

ADDITION = str(RECIPES / "activation-addition.yaml")
HUB_ID = "someorg/some-model"


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    return load_model(ModelSpec(id="builtin:tiny-random"), Path("."))


def _round_trip(model: LoadedModel) -> LoadedModel:
    return dataclasses.replace(model, remote="local", backend="remote-local", _widths={})


# -- the round trip, beyond the op x mode tests -------------------------------------------------


def test_vectors_extracted_through_the_round_trip_are_identical(
    model: LoadedModel, write: Write
) -> None:
    prompts = {"positive": ["I love this", "Great day", "so good"], "negative": ["Sad", "bad."]}
    vectors: dict[str, Any] = {
        f"c_{i}": {"kind": "contrastive", **prompts, "layer": 1, "site": site, "position": pos}
        for i, (site, pos) in enumerate(
            [("resid_post", "mean"), ("resid_pre", "last"), ("heads", 1), ("mlp_out", -2)]
        )
    }
    vectors["m"] = {"kind": "mean_activation", "prompts": prompts["positive"], "layer": 2}
    rows = [{"text": t, "label": int(k == "positive")} for k, ts in prompts.items() for t in ts]
    write("probe.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    vectors["p"] = {"kind": "probe", "data": "probe.jsonl", "layer": 1}
    path = write(
        "r.yaml",
        json.dumps(
            {
                "version": 1,
                "name": "round-trip",
                "model": {"id": "builtin:tiny-random"},
                "vectors": vectors,
                "run": {"mode": "trace", "prompts": ["x"]},
            }
        ),
    )
    loaded = load_recipe(path)
    names = list(vectors)
    local = build_vectors(loaded.recipe, model, loaded.document, names, cache=False)
    shipped = build_vectors(loaded.recipe, _round_trip(model), loaded.document, names, cache=False)
    for name in names:
        assert torch.equal(local[name].tensor, shipped[name].tensor), name


def test_text_metrics_through_the_round_trip_are_identical(model: LoadedModel) -> None:
    texts = ["The cat sat on the mat.", "Hi", "A much longer text about nothing at all."]
    plan = Plan(
        [PlanOp(0, "scale", "scale", 1, "resid_post", "transformer.h.1", "output", ALL, 0.5)]
    )
    for a, b in zip(
        text_logits(model, plan, texts, 2),
        text_logits(_round_trip(model), plan, texts, 2),
        strict=True,
    ):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert score_texts(model, plan, texts, 8) == score_texts(_round_trip(model), plan, texts, 8)


def test_run_with_backend_remote_local_reports_what_local_reports() -> None:
    code_a, out_a, err_a = steer("run", ADDITION, "--format", "json")
    code_b, out_b, err_b = steer("run", ADDITION, "--format", "json", "--backend", "remote-local")
    assert code_a == code_b == 0, err_a + err_b
    a, b = json.loads(out_a), json.loads(out_b)
    a.pop("timing"), b.pop("timing")
    assert a == b


# -- misconfigurations, each with its own clear error -----------------------------------------


@pytest.fixture
def no_ndif_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from nnsight import CONFIG

    monkeypatch.delenv("NDIF_API_KEY", raising=False)
    monkeypatch.setattr(CONFIG.API, "APIKEY", None)


def test_remote_without_a_key_names_the_variable(no_ndif_key: None) -> None:
    with pytest.raises(EnvironmentFailure, match="NDIF_API_KEY"):
        check_remote(ModelSpec(id=HUB_ID))


def test_remote_without_a_key_from_the_cli_exits_3(no_ndif_key: None) -> None:
    # an uncached hub id is fine for remote (NDIF has the weights): the key is what is missing
    code, out, err = steer("run", ADDITION, "--backend", "remote", "--set", f"model.id={HUB_ID}")
    assert code == 3, err
    assert "NDIF_API_KEY" in err and "Traceback" not in err and out == ""


@pytest.mark.parametrize("model_id", ["builtin:tiny-random", "./model"])
def test_remote_with_a_model_only_this_machine_has(model_id: str, monkeypatch: Any) -> None:
    monkeypatch.setenv("NDIF_API_KEY", "not-a-real-key")
    with pytest.raises(EnvironmentFailure, match="hub id"):
        check_remote(ModelSpec(id=model_id))


def test_remote_with_a_builtin_model_is_a_validation_error_at_the_field(write: Write) -> None:
    path = write(
        "r.yaml",
        MINIMAL.replace('  prompts: ["hello"]\n', '  prompts: ["hello"]\n  backend: remote\n'),
    )
    code, out, _ = steer("validate", str(path))  # diagnostics go to stdout
    assert code == 1
    assert f"{path}:7:12:" in out and "[backend-needs-hub-model]" in out


def test_missing_vllm_extra_names_the_extra() -> None:
    try:
        require_vllm()
    except EnvironmentFailure as exc:
        assert "pip install 'recipe-engine[vllm]'" in str(exc)
    else:  # pragma: no cover - a machine with vLLM installed
        pytest.skip("vLLM is installed here")


def _fake_hub_cache(root: Path) -> Path:
    """A hub cache holding one model's config (enough for validation, not for loading)."""
    folder = root / ("models--" + HUB_ID.replace("/", "--"))
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0123abcd", encoding="utf-8")
    snapshot = folder / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    config = {"model_type": "gpt2", "n_layer": 4, "n_embd": 64, "n_head": 4, "vocab_size": 300}
    (snapshot / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return root


def test_missing_vllm_extra_from_the_cli_exits_3(write: Write, tmp_path: Path) -> None:
    if _has_vllm():  # pragma: no cover
        pytest.skip("vLLM is installed here")
    recipe = write(
        "r.yaml",
        f"version: 1\nname: v\nmodel: {{id: {HUB_ID}}}\n"
        "run: {mode: generate, prompts: [hi], backend: vllm}\n",
    )
    env = {**os.environ, "HF_HUB_CACHE": str(_fake_hub_cache(tmp_path / "hub"))}
    done = subprocess.run(
        [sys.executable, "-m", "recipe_engine.cli.main", "run", str(recipe)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 3, done.stderr
    assert "recipe-engine[vllm]" in done.stderr and "Traceback" not in done.stderr


def _has_vllm() -> bool:
    try:
        require_vllm()
    except EnvironmentFailure:
        return False
    return True  # pragma: no cover


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ("positions: last", "/interventions/0/positions"),
        ("site: resid_pre", "/interventions/0/site"),
    ],
)
def test_vllm_limits_are_validation_errors(change: str, pointer: str, write: Write) -> None:
    path = write(
        "r.yaml",
        f"version: 1\nname: v\nmodel: {{id: {HUB_ID}}}\n"
        "vectors: {v: {kind: random, seed: 1}}\n"
        "interventions: [{op: add, vector: v, layers: 1}]\n"
        "run: {mode: generate, prompts: [hi], backend: vllm}\n",
    )
    path.write_text(path.read_text().replace("layers: 1}", "layers: 1, " + change + "}"))
    code, out, _ = steer("validate", str(path), "--format", "json")
    assert code == 1
    found = [d for f in json.loads(out)["files"] for d in f["diagnostics"]]
    assert any(d["code"] == "backend-unsupported" and d["pointer"] == pointer for d in found)


# -- what explain says --------------------------------------------------------------------------


def test_explain_local_says_nothing_leaves() -> None:
    code, out, err = steer("explain", ADDITION, "--format", "json")
    assert code == 0, err
    info = json.loads(out)
    assert info["backend"] == "local" and info["leaves_the_machine"] == []


def test_explain_remote_lists_what_leaves_and_loads_nothing(monkeypatch: Any) -> None:
    # offline and with an uncached hub id: explain must neither load the model nor send anything
    code, out, err = steer(
        "explain",
        ADDITION,
        "--format",
        "json",
        "--backend",
        "remote",
        "--set",
        f"model.id={HUB_ID}",
    )
    assert code == 0, err
    info = json.loads(out)
    assert info["backend"] == "remote" and info["plan"] is None
    leaving = " ".join(info["leaves_the_machine"])
    for needle in ("12 prompt(s)", "vector 'sentiment'", "model id", "API key"):
        assert needle in leaving
    text_code, text, _ = steer(
        "explain", ADDITION, "--backend", "remote", "--set", f"model.id={HUB_ID}"
    )
    assert text_code == 0 and "leaves this machine:" in text and "(not loaded)" in text


def test_backend_flag_is_the_run_backend_field() -> None:
    code, out, err = steer("explain", ADDITION, "--format", "json", "--backend", "remote-local")
    assert code == 0, err
    assert json.loads(out)["backend"] == "remote-local"


# -- vLLM's residual stream: hidden + residual --------------------------------------------------


class _FusedBlock(torch.nn.Module):
    """A vLLM-style layer: returns (hidden, residual); the stream is their sum, added inside
    the *next* layer (fused add-norm)."""

    def __init__(self, width: int, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.weight = torch.nn.Parameter(torch.randn(width, width, generator=generator) * 0.3)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> tuple[torch.Tensor, ...]:
        stream = hidden + residual
        return torch.tanh(stream @ self.weight), stream


class _FusedModel(torch.nn.Module):
    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(_FusedBlock(width, seed) for seed in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, residual = x, torch.zeros_like(x)
        for layer in self.layers:
            hidden, residual = layer(hidden, residual)
        return hidden + residual


class _PlainModel(_FusedModel):
    """The same computation, with the stream handed over whole (the reference)."""

    def stream_after(self, x: torch.Tensor, layer: int, edit: Any) -> torch.Tensor:
        hidden, residual = x, torch.zeros_like(x)
        for index, block in enumerate(self.layers):
            hidden, residual = block(hidden, residual)
            if index == layer:
                hidden, residual = edit(hidden + residual), torch.zeros_like(hidden)
        return hidden + residual


@pytest.mark.parametrize("op", ["add", "set", "scale", "zero", "project_out", "clamp"])
def test_resid_post_acts_on_hidden_plus_residual(op: str) -> None:
    torch.manual_seed(0)
    fused = _FusedModel()
    plain = _PlainModel()
    plain.load_state_dict(fused.state_dict())
    vector = torch.randn(8)
    unit = vector / vector.norm()
    needs_unit = op in ("project_out", "clamp", "scale")
    plan_op = PlanOp(
        0,
        op,
        op,
        1,
        "resid_post",
        "layers.1",
        "output",
        ALL,
        0.7,
        "v" if op not in ("zero", "scale") else None,
        (unit if needs_unit else vector) if op not in ("zero", "scale") else None,
    )
    x = torch.randn(5, 8)  # vLLM's flat [tokens, hidden] layout
    wrapped = nnsight.NNsight(fused)
    with torch.inference_mode(), wrapped.trace(x):
        apply_plan(wrapped, Plan([plan_op]), residual_pairs=True)
        out = wrapped.output.save()

    def reference_edit(stream: torch.Tensor) -> torch.Tensor:  # plain arithmetic, per op
        v = unit if needs_unit else vector
        if op == "add":
            return stream + 0.7 * v
        if op == "set":
            return (0.7 * v).expand_as(stream)
        if op == "scale":
            return 0.7 * stream
        if op == "zero":
            return torch.zeros_like(stream)
        along = (stream @ v).unsqueeze(-1) * v
        return stream - 0.7 * along if op == "project_out" else stream - along + 0.7 * v

    with torch.inference_mode():
        expected = plain.stream_after(x, 1, reference_edit)
        untouched = fused(x)
    assert torch.allclose(out, expected, atol=1e-6)
    assert not torch.allclose(out, untouched, atol=1e-4)  # the op did something
    # acting on one part alone would be wrong for every op but add: show that it differs
    if op != "add":
        with torch.inference_mode(), wrapped.trace(x):
            apply_plan(wrapped, Plan([plan_op]), residual_pairs=False)
            hidden_only = wrapped.output.save()
        assert not torch.allclose(hidden_only, expected, atol=1e-4)


def test_transform_moves_a_cpu_vector_to_the_activation_dtype() -> None:
    op = PlanOp(0, "add", "add", 0, "resid_post", "x", "output", ALL, 2.0, "v", torch.ones(4))
    h = torch.zeros(1, 2, 4, dtype=torch.float64)
    out = transform(h, op)
    assert out.dtype == torch.float64 and torch.equal(out, torch.full_like(h, 2.0))


# -- sampling settings per request ------------------------------------------------------------


def test_sampling_params_per_prompt() -> None:
    greedy = GenerationSpec(max_new_tokens=7, min_new_tokens=2)
    assert sampling_params(greedy, 0, trace_only=False) == {
        "max_tokens": 7,
        "min_tokens": 2,
        "temperature": 0.0,
    }
    assert sampling_params(greedy, 3, trace_only=True) == {"max_tokens": 1, "temperature": 0.0}
    sampled = GenerationSpec(do_sample=True, temperature=0.8, top_p=0.9, top_k=5, seed=11)
    first = sampling_params(sampled, 0, trace_only=False)
    second = sampling_params(sampled, 1, trace_only=False)
    assert first["temperature"] == 0.8 and first["top_p"] == 0.9 and first["top_k"] == 5
    assert (first["seed"], second["seed"]) == (11, 12)  # one request per prompt: own noise
