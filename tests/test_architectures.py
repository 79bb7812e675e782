"""Every architecture adapter, checked against plain PyTorch hooks on the HF modules.

For each family a tiny random model is built from its config (nothing downloads). The engine
compiles an `add` at one middle layer for each site and runs a left-padded batch of two prompts
of different lengths through nnsight; the reference registers forward (pre-)hooks directly on
the HF modules, at paths written out literally below (not taken from the engine's adapters), and
runs each prompt alone, unpadded. The next-token logits must agree row by row.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from recipe_engine.compiler import compile_plan
from recipe_engine.errors import RecipeError
from recipe_engine.execute.runner import trace_pass
from recipe_engine.format.recipe import Recipe
from recipe_engine.resolve.builtin_build import byte_tokenizer
from recipe_engine.resolve.model_loader import LoadedModel, wrap_model
from tests.support.module_hooks import edit_first, pre_hook

PROMPTS = ["The quick brown fox jumps", "Hi"]  # different lengths: row 1 is left-padded
SITES = ("resid_pre", "resid_post", "attn_out", "mlp_out", "heads")
HEADS = [1, 2]
LAYER = 1  # the middle block of three
STRENGTH = 2.0
ATOL = 1e-5

_TOKENS = {"vocab_size": 257, "bos_token_id": 256, "eos_token_id": 256, "pad_token_id": 256}
_DECODER = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "max_position_embeddings": 64,
}
_GQA = {**_DECODER, "num_key_value_heads": 2, "head_dim": 8}
_SLIDING = {"sliding_window": 4}
_SOFTCAP = {"final_logit_softcapping": 1.0}


@dataclass(frozen=True)
class Family:
    """A tiny config and the literal module paths of its HF implementation."""

    model_type: str
    config: dict[str, Any]
    blocks: str  # ModuleList of decoder blocks
    attn: str  # attention module, relative to a block
    mlp: str  # MLP module, relative to a block
    out_proj: str  # attention output projection, relative to a block
    hidden: int = 32
    n_heads: int = 4
    head_dim: int = 8


def llama_like(model_type: str, config: dict[str, Any], head_dim: int = 8) -> Family:
    """model.layers.N with self_attn, self_attn.o_proj and mlp."""
    return Family(
        model_type,
        config,
        blocks="model.layers",
        attn="self_attn",
        mlp="mlp",
        out_proj="self_attn.o_proj",
        head_dim=head_dim,
    )


FAMILIES: dict[str, Family] = {
    family.model_type: family
    for family in [
        Family(
            "gpt2",
            {"n_embd": 32, "n_layer": 3, "n_head": 4, "n_positions": 64},
            blocks="transformer.h",
            attn="attn",
            mlp="mlp",
            out_proj="attn.c_proj",
        ),
        llama_like("llama", _GQA),
        llama_like("mistral", {**_GQA, **_SLIDING}),
        # Qwen2 and Phi-3 configs have no head_dim: hidden / heads = 32 / 4 = 8.
        llama_like("qwen2", {**_DECODER, "num_key_value_heads": 2}),
        # n_heads * head_dim = 64 != hidden 32, as in Gemma-7B: the heads site is wider.
        llama_like("qwen3", {**_GQA, "head_dim": 16}, head_dim=16),
        llama_like("gemma", {**_GQA, "head_dim": 16}, head_dim=16),
        # A sliding window shorter than the long prompt, and a final logit softcap small enough
        # that reading pre-cap logits would show.
        llama_like("gemma2", {**_GQA, **_SLIDING, **_SOFTCAP}),
        llama_like("gemma3_text", {**_GQA, **_SLIDING, **_SOFTCAP}),
        llama_like("phi3", {**_DECODER, "num_key_value_heads": 2}),
        Family(
            "gpt_neox",
            _DECODER,
            blocks="gpt_neox.layers",
            attn="attention",
            mlp="mlp",
            out_proj="attention.dense",
        ),
        # Not in ADAPTERS: served by the generic fallback.
        Family(
            "falcon",
            {"hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4},
            blocks="transformer.h",
            attn="self_attention",
            mlp="mlp",
            out_proj="self_attention.dense",
        ),
        llama_like("olmo", {**_DECODER, "num_key_value_heads": 2}),
    ]
}


def families(names: list[str]) -> list[Any]:
    return [pytest.param(n) for n in names]


DEDICATED = [t for t in FAMILIES if t not in ("falcon", "olmo")]
FALLBACK = ["falcon", "olmo"]


@dataclass
class Built:
    family: Family
    loaded: LoadedModel
    reference: torch.nn.Module  # a deep copy of the HF model, never touched by nnsight
    tokenizer: Any


_BUILT: dict[tuple[str, str | None], Built] = {}


def build(model_type: str, architecture: str | None = None) -> Built:
    key = (model_type, architecture)
    if key not in _BUILT:
        family = FAMILIES[model_type]
        config = AutoConfig.for_model(model_type, **family.config, **_TOKENS)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1234)
            hf = AutoModelForCausalLM.from_config(config).eval()  # type: ignore[no-untyped-call]
        reference = copy.deepcopy(hf)
        tokenizer = byte_tokenizer()
        loaded = wrap_model(hf, byte_tokenizer(), architecture=architecture)
        _BUILT[key] = Built(family, loaded, reference, tokenizer)
    return _BUILT[key]


def seeded_vector(width: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(width, generator=generator)


def recipe(**intervention: Any) -> Recipe:
    return Recipe.model_validate(
        {
            "version": 1,
            "name": "arch-test",
            "model": {"id": "builtin:tiny-random"},
            "vectors": {"v": {"kind": "random", "seed": 0}},
            "interventions": [
                {"op": "add", "vector": "v", "strength": STRENGTH, "positions": "all"}
                | intervention
            ],
            "run": {"mode": "trace", "prompts": PROMPTS},
        }
    )


def engine_logits(built: Built, vector: torch.Tensor, **intervention: Any) -> torch.Tensor:
    plan = compile_plan(recipe(**intervention), built.loaded, {"v": vector})
    assert len(plan.ops) == 1
    return trace_pass(built.loaded, plan, PROMPTS, batch_size=len(PROMPTS)).next_logits


def module(root: torch.nn.Module, path: str) -> torch.nn.Module:
    found = root.get_submodule(path)
    assert isinstance(found, torch.nn.Module)
    return found


@contextmanager
def reference_hook(built: Built, site: str, vector: torch.Tensor) -> Iterator[None]:
    fam, root = built.family, built.reference
    block = f"{fam.blocks}.{LAYER}"
    delta = STRENGTH * vector

    def add(h: torch.Tensor) -> torch.Tensor:
        return h + delta

    def add_heads(h: torch.Tensor) -> torch.Tensor:
        h = h.clone()
        for head in HEADS:
            cols = slice(head * fam.head_dim, (head + 1) * fam.head_dim)
            h[..., cols] = h[..., cols] + delta[cols]
        return h

    if site == "resid_pre":
        handle = module(root, block).register_forward_pre_hook(pre_hook(add), with_kwargs=True)
    elif site == "heads":
        target = module(root, f"{block}.{fam.out_proj}")
        handle = target.register_forward_pre_hook(pre_hook(add_heads), with_kwargs=True)
    else:
        path = {
            "resid_post": block,
            "attn_out": f"{block}.{fam.attn}",
            "mlp_out": f"{block}.{fam.mlp}",
        }[site]
        handle = module(root, path).register_forward_hook(lambda m, i, o: edit_first(o, add))
    try:
        yield
    finally:
        handle.remove()


def reference_logits(built: Built, site: str | None, vector: torch.Tensor) -> torch.Tensor:
    """Each prompt alone (no padding) through the untouched HF copy, hooked when site is set."""
    rows = []
    with torch.inference_mode():
        for prompt in PROMPTS:
            inputs = built.tokenizer(prompt, return_tensors="pt")
            if site is None:
                logits = built.reference(**inputs).logits
            else:
                with reference_hook(built, site, vector):
                    logits = built.reference(**inputs).logits
            rows.append(logits[0, -1].float())
    return torch.stack(rows)


def site_width(fam: Family, site: str) -> int:
    return fam.n_heads * fam.head_dim if site == "heads" else fam.hidden


def check_site(built: Built, site: str) -> None:
    vector = seeded_vector(site_width(built.family, site), seed=SITES.index(site))
    extra: dict[str, Any] = {"heads": HEADS} if site == "heads" else {}
    steered = engine_logits(built, vector, site=site, layers=LAYER, **extra)
    expected = reference_logits(built, site, vector)
    baseline = reference_logits(built, None, vector)
    assert steered.shape == expected.shape == (len(PROMPTS), 257)
    for row in range(len(PROMPTS)):
        diff = (steered[row] - expected[row]).abs().max().item()
        assert diff <= ATOL, f"{built.family.model_type} {site} row {row}: max |diff| {diff:.3g}"
        moved = (expected[row] - baseline[row]).abs().max().item()
        assert moved > 1e-3, f"{built.family.model_type} {site} row {row}: steering had no effect"


@pytest.mark.parametrize("model_type", families(DEDICATED + FALLBACK))
def test_unsteered_batch_matches_each_prompt_alone(model_type: str) -> None:
    """Left padding alone changes nothing: the empty plan gives each prompt's own logits."""
    built = build(model_type)
    plan = compile_plan(
        Recipe.model_validate(
            {
                "version": 1,
                "name": "empty",
                "model": {"id": "builtin:tiny-random"},
                "run": {"mode": "trace", "prompts": PROMPTS},
            }
        ),
        built.loaded,
        {},
    )
    got = trace_pass(built.loaded, plan, PROMPTS, batch_size=2).next_logits
    expected = reference_logits(built, None, torch.zeros(0))
    assert (got - expected).abs().max().item() <= ATOL


@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize("model_type", families(DEDICATED))
def test_dedicated_adapter_matches_hooks(model_type: str, site: str) -> None:
    built = build(model_type)
    assert built.loaded.adapter.family == model_type
    check_site(built, site)


@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize("model_type", FALLBACK)
def test_unlisted_family_uses_generic_adapter(model_type: str, site: str) -> None:
    built = build(model_type)
    assert built.loaded.adapter.family == "generic"
    check_site(built, site)


@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize("model_type", ["gpt2", "llama", "gpt_neox"])
def test_generic_override_matches_hooks(model_type: str, site: str) -> None:
    built = build(model_type, architecture="generic")
    assert built.loaded.adapter.family == "generic"
    check_site(built, site)


@pytest.mark.parametrize(
    ("model_type", "path", "hooked", "width"),
    [
        ("llama", "model.layers.{layer}.mlp", "model.layers.1.mlp", 32),
        ("gpt2", "transformer.h.{layer}.attn", "transformer.h.1.attn", 32),
        ("qwen2", "model.layers.1.self_attn.o_proj", "model.layers.1.self_attn.o_proj", 32),
        # The example in the `module:` field's own description: its output is 4 x n_embd.
        ("gpt2", "transformer.h.{layer}.mlp.c_fc", "transformer.h.1.mlp.c_fc", 128),
    ],
)
def test_module_escape_hatch(model_type: str, path: str, hooked: str, width: int) -> None:
    built = build(model_type)
    vector = seeded_vector(width, seed=99)
    extra: dict[str, Any] = {"layers": LAYER} if "{layer}" in path else {}
    steered = engine_logits(built, vector, module=path, **extra)

    handle = module(built.reference, hooked).register_forward_hook(
        lambda m, i, o: edit_first(o, lambda h: h + STRENGTH * vector)
    )
    try:
        expected = reference_logits(built, None, vector)
    finally:
        handle.remove()
    baseline = reference_logits(built, None, vector)
    assert (steered - expected).abs().max().item() <= ATOL
    assert (expected - baseline).abs().amax(dim=-1).min().item() > 1e-3


@pytest.mark.parametrize(
    ("model_type", "path", "extra"),
    [
        ("llama", "model.layers.{layer}.no_such_mlp", {"layers": LAYER}),
        ("gpt2", "transformer.blocks.{layer}.mlp", {"layers": LAYER}),
        ("llama", "model.layers.7.mlp", {}),  # a block index past the last layer
    ],
)
def test_unknown_module_is_a_recipe_error(
    model_type: str, path: str, extra: dict[str, Any]
) -> None:
    built = build(model_type)
    with pytest.raises(RecipeError) as info:
        compile_plan(recipe(module=path, **extra), built.loaded, {"v": seeded_vector(32, 0)})
    [diagnostic] = info.value.diagnostics
    assert diagnostic.code == "unknown-module"
    assert diagnostic.pointer == "/interventions/0/module"
    assert path.replace("{layer}", str(LAYER)) in diagnostic.message
