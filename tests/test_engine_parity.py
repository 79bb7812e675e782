"""Every op x site x mode through the engine equals an independent plain-PyTorch reference.

Engine: batched, left-padded, through nnsight. Reference (tests/support/engine_reference.py):
forward hooks on the Hugging Face modules, each prompt alone. Logits must agree within 1e-5 and
greedy tokens must be identical, on tiny GPT-2 and Llama models.

Every op x site x mode also goes through nnsight's `remote="local"` round trip (the trace
serialized as for NDIF, deserialized with this project's modules hidden, run in-process): its
outputs must be identical to the local run's.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

from recipe_engine.compiler import compile_plan
from recipe_engine.execute.reduce import StepReduction
from recipe_engine.execute.runner import generate_pass, trace_pass
from recipe_engine.format.model_spec import ModelSpec
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.run_spec import GenerationSpec
from recipe_engine.plan import Plan
from recipe_engine.resolve.model_loader import LoadedModel, load_model
from tests.support.engine_reference import hooks, reference_generate

OPS = ["add", "set", "scale", "scale_dir", "zero", "mean_ablate", "project_out", "clamp"]
SITES = ["resid_pre", "resid_post", "attn_out", "mlp_out", "heads"]
FAMILIES = {"gpt2": "builtin:tiny-random", "llama": "builtin:tiny-random-llama"}
# Same token length (byte tokenizer: same number of characters) so greedy decoding is compared
# without padding numerics; padding itself is covered by the trace tests and test_positions.
GEN_PROMPTS = ["The cat sat on", "A dog ran past"]
TRACE_PROMPTS = ["The cat sat on the mat", "Hi", "A dog ran"]
LAYERS = {1: 0.5, 3: 1.0}
NEW_TOKENS = 5

KEEP = StepReduction(keep_logits=True)  # every step's full logits, to compare


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request: pytest.FixtureRequest) -> tuple[str, LoadedModel]:
    return request.param, load_model(
        ModelSpec(id=FAMILIES[request.param]), __import__("pathlib").Path(".")
    )


def _vector(model: LoadedModel, site: str) -> torch.Tensor:
    width = model.shape.heads_width if site == "heads" else model.shape.hidden_size
    generator = torch.Generator().manual_seed(7)
    return torch.randn(width, generator=generator) * 0.5


def _intervention(op: str, site: str) -> dict[str, Any]:
    item: dict[str, Any] = {"op": op, "site": site, "layers": LAYERS, "positions": "all"}
    if op == "scale_dir":
        item.update(op="scale", vector="v", strength=0.25)
    elif op == "scale":
        item.update(strength=0.5)
    elif op != "zero":
        item.update(vector="v", strength=1.5)
    if site == "heads":
        item["heads"] = [1, 2]
    return item


def _recipe(model_id: str, intervention: dict[str, Any], mode: str) -> Recipe:
    return Recipe.model_validate(
        {
            "version": 1,
            "name": "parity",
            "model": {"id": model_id},
            "vectors": {"v": {"kind": "random", "seed": 7}},
            "interventions": [intervention],
            "run": {"mode": mode, "prompts": ["x"]},
        }
    )


def _columns(model: LoadedModel, heads: list[int]) -> torch.Tensor:
    hd = model.shape.head_dim
    return torch.cat([torch.arange(h * hd, (h + 1) * hd) for h in heads])


def _reference_ctx(model: LoadedModel, family: str, item: dict[str, Any], v: torch.Tensor):  # type: ignore[no-untyped-def]
    op = "scale" if item["op"] == "scale" else item["op"]
    vector = v if "vector" in item else None
    columns = _columns(model, item["heads"]) if item["site"] == "heads" else None

    def all_positions(step: int, chunk: int) -> list[int]:
        return list(range(chunk))

    return hooks(
        model.hf,
        family,
        item["site"],
        LAYERS,
        op,
        vector,
        item.get("strength", 1.0),
        all_positions,
        columns,
    )


def _reference_logits(model: LoadedModel, prompts: list[str]) -> torch.Tensor:
    rows = []
    with torch.inference_mode():
        for prompt in prompts:
            encoded = model.tokenizer(prompt, return_tensors="pt")
            rows.append(model.hf(**encoded).logits[0, -1].float())
    return torch.stack(rows)


def _reference_generate(model: LoadedModel, prompt: str) -> tuple[list[int], torch.Tensor]:
    tokens, logits = reference_generate(model, prompt, NEW_TOKENS)
    return tokens, logits[0]


def _plan(model: LoadedModel, model_id: str, item: dict[str, Any], mode: str):  # type: ignore[no-untyped-def]
    v = _vector(model, item["site"])
    return compile_plan(_recipe(model_id, item, mode), model, {"v": v}), v


@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize("op", OPS)
def test_trace_matches_reference(family: tuple[str, LoadedModel], op: str, site: str) -> None:
    name, model = family
    item = _intervention(op, site)
    plan, v = _plan(model, FAMILIES[name], item, "trace")
    engine = trace_pass(model, plan, TRACE_PROMPTS, batch_size=8).next_logits
    with _reference_ctx(model, name, item, v):
        reference = _reference_logits(model, TRACE_PROMPTS)
    clean = _reference_logits(model, TRACE_PROMPTS)
    assert (engine - reference).abs().max() <= 1e-5
    assert (engine - clean).abs().max() > 1e-4, "the intervention had no effect"


@pytest.mark.parametrize("mode", ["generate", "edit"])
@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize("op", OPS)
def test_generation_matches_reference(
    family: tuple[str, LoadedModel], op: str, site: str, mode: str
) -> None:
    name, model = family
    item = _intervention(op, site)
    plan, v = _plan(model, FAMILIES[name], item, mode)
    gen = GenerationSpec(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS)
    engine = generate_pass(model, plan, GEN_PROMPTS, gen, batch_size=8, persistent=mode == "edit")
    for row, prompt in enumerate(GEN_PROMPTS):
        with _reference_ctx(model, name, item, v):
            tokens, first_logits = _reference_generate(model, prompt)
        assert engine.generated[row] == tokens
        assert (engine.next_logits[row] - first_logits).abs().max() <= 1e-5
    assert not getattr(model.nn, "_edits", None), "edit mode must clear its edit"


def test_edit_equals_generate_and_leaves_model_clean(family: tuple[str, LoadedModel]) -> None:
    name, model = family
    item = {"op": "add", "vector": "v", "site": "resid_post", "layers": "1:3", "strength": 4.0}
    plan, _ = _plan(model, FAMILIES[name], item, "edit")
    gen = GenerationSpec(max_new_tokens=8, min_new_tokens=8)
    before = _reference_logits(model, TRACE_PROMPTS)
    steered = generate_pass(model, plan, GEN_PROMPTS, gen, batch_size=8)
    edited = generate_pass(model, plan, GEN_PROMPTS, gen, batch_size=8, persistent=True)
    assert steered.generated == edited.generated
    assert torch.allclose(steered.next_logits, edited.next_logits, atol=1e-6)
    unsteered = generate_pass(model, Plan(), GEN_PROMPTS, gen, batch_size=8)
    assert unsteered.generated != steered.generated
    # after the edit: the HF module and the nnsight wrapper both run the original model
    assert torch.equal(before, _reference_logits(model, TRACE_PROMPTS))
    clean = trace_pass(model, Plan(), TRACE_PROMPTS, batch_size=8).next_logits
    assert (clean - before).abs().max() <= 1e-5
    reference_tokens = [_reference_generate(model, p)[0] for p in GEN_PROMPTS]
    assert (
        generate_pass(
            model,
            Plan(),
            GEN_PROMPTS,
            GenerationSpec(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS),
            batch_size=8,
        ).generated
        == reference_tokens
    )


# -- the NDIF round trip -----------------------------------------------------------------------


def _round_trip(model: LoadedModel) -> LoadedModel:
    """The same weights, with every trace serialized and deserialized as for NDIF."""
    return dataclasses.replace(model, remote="local", backend="remote-local", _widths={})


def _round_trip_sites(op: str, mode: str) -> list[str]:
    """Trace mode: every site (cheap). Generation: one site per op, rotating, so that across
    the ops every site goes through a generate and an edit round trip (each costs a few
    serializations per step)."""
    return SITES if mode == "trace" else [SITES[OPS.index(op) % len(SITES)]]


@pytest.mark.parametrize("mode", ["trace", "generate", "edit"])
@pytest.mark.parametrize("op", OPS)
def test_remote_round_trip_is_identical(
    family: tuple[str, LoadedModel], op: str, mode: str
) -> None:
    name, model = family
    remote = _round_trip(model)
    for site in _round_trip_sites(op, mode):
        plan, _ = _plan(model, FAMILIES[name], _intervention(op, site), mode)
        if mode == "trace":
            local = trace_pass(model, plan, TRACE_PROMPTS, batch_size=8).next_logits
            shipped = trace_pass(remote, plan, TRACE_PROMPTS, batch_size=8).next_logits
            assert torch.equal(local, shipped), site
            continue
        gen = GenerationSpec(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS)
        edit = mode == "edit"
        local_run = generate_pass(
            model, plan, GEN_PROMPTS, gen, batch_size=8, persistent=edit, reduction=KEEP
        )
        shipped_run = generate_pass(
            remote, plan, GEN_PROMPTS, gen, batch_size=8, persistent=edit, reduction=KEEP
        )
        assert shipped_run.generated == local_run.generated, site
        if edit:
            # a server keeps no edit between requests: remote edit mode puts the plan in
            # every call, which equals the local persistent edit up to float summation order
            assert torch.allclose(shipped_run.next_logits, local_run.next_logits, atol=1e-6)
        else:
            assert torch.equal(shipped_run.next_logits, local_run.next_logits), site
            for a, b in zip(shipped_run.step_logits, local_run.step_logits, strict=True):
                assert torch.equal(a, b), site


def test_round_trip_covers_every_site_in_every_mode() -> None:
    for mode in ("trace", "generate", "edit"):
        covered = {site for op in OPS for site in _round_trip_sites(op, mode)}
        assert covered == set(SITES), mode
