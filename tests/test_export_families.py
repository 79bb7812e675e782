"""`steer export --format hf` per family: the folded model, loaded by plain transformers in a
process that imports neither the engine nor nnsight, reproduces the engine's steered pass.

For each family of EXPORTED a tiny random model (tests/architecture_zoo.py) is saved as a
folder; one recipe per cell (an `add` at resid_post / attn_out / mlp_out, directional ablation
across every writer and the embedding) runs through the engine (generate mode, each prompt
alone) and is exported. The reference subprocess (tests/test_export_hf.py's) loads every
exported folder with AutoModelForCausalLM.from_pretrained: next-token logits must agree to
1e-5 (float32; folding in float64 and rounding the weights once moves logits ~1e-6) and the
greedy tokens must be identical. A refused cell keeps its message. The statuses must equal
tests/data/export_matrix.json (EXPORT_MATRIX_WRITE=1 rewrites it), which feeds the README's
Architectures table; every other architecture of the zoo is asserted refused from its config.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from recipe_engine.errors import RecipeError
from recipe_engine.export import export_recipe
from recipe_engine.export.families import layout_for
from recipe_engine.export.fold import NotFoldable
from recipe_engine.pipeline import compile_recipe, load_recipe, run_recipe
from recipe_engine.resolve.builtin_build import byte_tokenizer
from tests.architecture_zoo import ARCHITECTURES, config_kwargs
from tests.test_export_hf import reference

pytestmark = pytest.mark.usefixtures("one_torch_thread")
MATRIX_FILE = Path(__file__).parent / "data" / "export_matrix.json"
EXPORTED = (
    "gpt2",
    "llama",
    "mistral",
    "ministral",
    "qwen2",
    "qwen3",
    "qwen2_moe",
    "qwen3_moe",
    "mixtral",
    "gemma",
    "gemma2",
    "gemma3_text",
    "phi3",
    "olmo2",
    "granite",
    "gpt_neox",
    "arcee",
    "helium",
    "smollm3",
    "seed_oss",
)
PROMPTS = ["hello world", "the cat sat"]
ATOL = 1e-5
CELLS: dict[str, list[str]] = {
    "resid_post": ["{vector: v, op: add, layers: 1, site: resid_post, strength: 2.0}"],
    "attn_out": ["{vector: v, op: add, layers: 1, site: attn_out, strength: 2.0}"],
    "mlp_out": ["{vector: v, op: add, layers: 1, site: mlp_out, strength: 2.0}"],
    "project_out": [
        "{vector: v, op: project_out, layers: all, site: attn_out}",
        "{vector: v, op: project_out, layers: all, site: mlp_out}",
        "{vector: v, op: project_out, layers: 0, site: resid_pre}",
    ],
}


def _recipe(cell: str) -> str:
    items = "\n".join(f"  - {item}" for item in CELLS[cell])
    return (
        f"version: 1\nname: bake-{cell}\nmodel: {{id: ./model, dtype: float32}}\n"
        "vectors:\n  v: {kind: random, seed: 3, norm: 4.0}\n"
        f"interventions:\n{items}\n"
        f"run: {{mode: generate, prompts: {json.dumps(PROMPTS)}, "
        "generation: {max_new_tokens: 4}, compare_baseline: false}\n"
        "report: {metrics: []}\n"
    )


def _save_model(model_type: str, folder: Path, **changes: Any) -> None:
    config = AutoConfig.for_model(model_type, **{**config_kwargs(model_type), **changes})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)
        model = AutoModelForCausalLM.from_config(config)  # type: ignore[no-untyped-call]
    model.save_pretrained(folder)
    byte_tokenizer().save_pretrained(folder)


def _family(
    model_type: str, tmp: Path, cells: tuple[str, ...] = tuple(CELLS), **changes: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(statuses by cell, engine passes by exported folder) of one family."""
    root = tmp / model_type
    _save_model(model_type, root / "model", **changes)
    statuses: dict[str, Any] = {}
    passes: dict[str, Any] = {}
    for cell in cells:
        recipe = root / f"{cell}.yaml"
        recipe.write_text(_recipe(cell))
        compiled = compile_recipe(load_recipe(recipe, overrides=[]))
        try:
            export_recipe(compiled, "hf", root / f"baked-{cell}")
        except RecipeError as exc:
            message = exc.diagnostics[0].message.removeprefix("cannot bake: ")
            statuses[cell] = {"status": "refused", "message": message}
            continue
        statuses[cell] = {"status": "ok"}
        passes[str(root / f"baked-{cell}")] = run_recipe(compiled).passes["steered"]
    return statuses, passes


def _compare(rows: list[dict[str, Any]], steered: Any) -> float:
    worst = 0.0
    for index, row in enumerate(rows):
        ours = steered.next_logits[index].float()
        worst = max(worst, float((ours - torch.tensor(row["logits"])).abs().max()))
        assert row["greedy"][: len(steered.generated[index])] == steered.generated[index]
    return worst


def test_exported_families_match_plain_transformers(tmp_path: Path) -> None:
    statuses: dict[str, Any] = {}
    passes: dict[str, Any] = {}
    for model_type in EXPORTED:
        statuses[model_type], found = _family(model_type, tmp_path)
        passes |= found
    rows = reference({folder: PROMPTS for folder in passes}, tmp_path)
    for folder, steered in passes.items():
        worst = _compare(rows[folder], steered)
        assert worst <= ATOL, f"{folder}: max |logit difference| {worst:.2e}"
    for model_type in ARCHITECTURES:
        if model_type in EXPORTED:
            continue
        config = AutoConfig.for_model(model_type, **config_kwargs(model_type))
        with pytest.raises(NotFoldable) as caught:
            layout_for(config)
        statuses[model_type] = {"all": {"status": "refused", "message": str(caught.value)}}
    if os.environ.get("EXPORT_MATRIX_WRITE"):
        data = {"cells": list(CELLS), "architectures": dict(sorted(statuses.items()))}
        MATRIX_FILE.write_text(json.dumps(data, indent=1) + "\n")
    expected = json.loads(MATRIX_FILE.read_text())["architectures"]
    assert dict(sorted(statuses.items())) == expected, (
        f"export statuses differ from {MATRIX_FILE.name}: rerun with EXPORT_MATRIX_WRITE=1 and "
        "regenerate the README table (python -m scripts.architecture_table)"
    )


def _config(model_type: str, **changes: Any) -> Any:
    return AutoConfig.for_model(model_type, **{**config_kwargs(model_type), **changes})


@pytest.mark.parametrize(
    ("model_type", "changes", "reason"),
    [
        # Llama's (and SmolLM3's) RoPE rotates the whole head at one set of factors
        (
            "phi3",
            {"rope_parameters": {"rope_type": "default", "partial_rotary_factor": 0.5}},
            "rotates part of each head",
        ),
        (
            "phi3",
            {
                "rope_parameters": {
                    "rope_type": "longrope",
                    "rope_theta": 10000.0,
                    "short_factor": [1.0] * 8,
                    "long_factor": [2.0] * 8,
                    "original_max_position_embeddings": 64,
                }
            },
            "longrope RoPE",
        ),
        ("gemma", {"use_bidirectional_attention": True}, "attends bidirectionally"),
    ],
)
def test_a_twin_that_would_compute_otherwise_is_refused(
    model_type: str, changes: dict[str, Any], reason: str
) -> None:
    with pytest.raises(NotFoldable) as caught:
        layout_for(_config(model_type, **changes))
    assert reason in str(caught.value) and "gguf-control-vector" in str(caught.value)


@pytest.mark.parametrize(
    ("model_type", "norm_topk_prob", "reason"),
    [
        ("mixtral", None, "renormalizes the top-k router weights to sum to 1"),
        ("qwen3_moe", True, "renormalizes the top-k router weights to sum to 1"),
        ("qwen3_moe", False, "do not sum to 1"),
        ("qwen2_moe", True, "per-token sigmoid gate"),
        ("qwen2_moe", False, "do not sum to 1"),
    ],
)
def test_moe_translations_are_refused_with_the_algebra(
    model_type: str, norm_topk_prob: bool | None, reason: str
) -> None:
    """A bias in every expert adds (sum of the applied router weights) x b: the reason says
    whether that sum is 1 for this config, and that transformers' experts have no bias."""
    changes = {} if norm_topk_prob is None else {"norm_topk_prob": norm_topk_prob}
    layout = layout_for(_config(model_type, **changes))
    assert layout.mlp_writer is None and layout.mixed_writers
    assert reason in layout.no_mlp_bias and "experts hold no bias" in layout.no_mlp_bias


def test_moe_ablation_folds_into_dense_and_sparse_blocks_alike(tmp_path: Path) -> None:
    """Qwen3-MoE with a dense MLP at layer 1 (mlp_only_layers): project_out at mlp_out of every
    layer goes into the experts' stacked down projections of layers 0 and 2 and the dense down
    projection of layer 1."""
    statuses, passes = _family("qwen3_moe", tmp_path, ("project_out",), mlp_only_layers=[1])
    assert statuses == {"project_out": {"status": "ok"}}
    rows = reference({folder: PROMPTS for folder in passes}, tmp_path)
    for folder, steered in passes.items():
        assert _compare(rows[folder], steered) <= ATOL


@pytest.mark.parametrize(
    ("model_type", "changes"),
    [
        ("mistral", {"sliding_window": 4}),
        ("phi3", {"sliding_window": 4}),
        # Qwen2 slides on the layers from max_window_layers on: layers 1 and 2 here
        ("qwen2", {"use_sliding_window": True, "sliding_window": 4, "max_window_layers": 1}),
    ],
)
def test_a_sliding_window_shorter_than_the_prompts_is_kept(
    model_type: str, changes: dict[str, Any], tmp_path: Path
) -> None:
    """A 4-token window cuts attention inside every prompt here ("the cat sat" is 11 bytes):
    the export rebuilds the model as SmolLM3 with the same window on the same layers, and the
    folded model still matches the engine's steered pass on the windowed original."""
    layout = layout_for(_config(model_type, **changes))
    assert layout.rebuild_as == "smollm3"
    statuses, passes = _family(model_type, tmp_path, ("resid_post", "project_out"), **changes)
    assert statuses == {"resid_post": {"status": "ok"}, "project_out": {"status": "ok"}}
    rows = reference({folder: PROMPTS for folder in passes}, tmp_path)
    for folder, steered in passes.items():
        assert _compare(rows[folder], steered) <= ATOL, folder
