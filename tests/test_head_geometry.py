"""Head geometry from the config: `site: heads` acts on the columns the attention output
projection really reads per head (issue 27).

DeepSeek V2/V3 (multi-head latent attention) configs carry `head_dim` = qk_rope_head_dim, while
o_proj reads n_heads x v_head_dim. The reference is a plain forward pre-hook on o_proj that
zeroes the columns of head 1 as the projection's own in_features divides them; the engine's
op must match it, and a per-head vector as wide as o_proj's input must be accepted.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from recipe_engine.compiler import compile_plan
from recipe_engine.errors import RecipeError
from recipe_engine.execute.runner import trace_pass
from recipe_engine.format.recipe import Recipe
from recipe_engine.model_config import shape_from_config
from recipe_engine.resolve.builtin_build import byte_tokenizer
from recipe_engine.resolve.model_loader import wrap_model
from tests.architecture_zoo import config_kwargs

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PROMPT = "The quick brown fox"
V_HEAD = 16  # architecture_zoo's MLA: v_head_dim 16, qk_rope_head_dim (config head_dim) 8


def _model(model_type: str, **extra: Any) -> torch.nn.Module:
    config = AutoConfig.for_model(model_type, **{**config_kwargs(model_type), **extra})
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config).eval()  # type: ignore[no-untyped-call]


def _recipe(intervention: dict[str, Any]) -> Recipe:
    return Recipe.model_validate(
        {
            "version": 1,
            "name": "heads",
            "model": {"id": "builtin:tiny-random"},
            "vectors": {"v": {"kind": "random", "seed": 0}},
            "interventions": [{"layers": 1, "positions": "all", **intervention}],
            "run": {"mode": "trace", "prompts": [PROMPT]},
        }
    )


def _hooked_logits(model: torch.nn.Module, edit: Any) -> torch.Tensor:
    projection = model.get_submodule("model.layers.1.self_attn.o_proj")
    handle = projection.register_forward_pre_hook(lambda m, args: (edit(args[0].clone()),))
    try:
        with torch.inference_mode():
            ids = byte_tokenizer()(PROMPT, return_tensors="pt")
            return model(**ids).logits[0, -1].float()
    finally:
        handle.remove()


@pytest.mark.parametrize("model_type", ["deepseek_v2", "deepseek_v3"])
def test_mla_heads_act_on_the_value_head_columns(model_type: str) -> None:
    hf = _model(model_type)
    reference = copy.deepcopy(hf)
    assert reference.get_submodule("model.layers.1.self_attn.o_proj").in_features == 4 * V_HEAD
    loaded = wrap_model(hf, byte_tokenizer())
    assert (loaded.shape.head_dim, loaded.shape.head_dim_key) == (V_HEAD, "v_head_dim")

    plan = compile_plan(_recipe({"op": "zero", "site": "heads", "heads": [1]}), loaded, {})
    assert plan.describe()[0]["head_columns"] == [[16, 32]]  # what explain prints
    steered = trace_pass(loaded, plan, [PROMPT], batch_size=1).next_logits[0]

    def zero_head_1(h: torch.Tensor) -> torch.Tensor:
        h[..., V_HEAD : 2 * V_HEAD] = 0
        return h

    expected = _hooked_logits(reference, zero_head_1)
    untouched = _hooked_logits(reference, lambda h: h)
    assert (expected - untouched).abs().max() > 1e-3  # the ablation moves the logits
    assert torch.allclose(steered, expected, atol=1e-5), (steered - expected).abs().max()

    # a per-head vector as wide as o_proj's input (4 x 16) is the right shape
    vector = torch.randn(4 * V_HEAD, generator=torch.Generator().manual_seed(1))
    add = _recipe({"op": "add", "site": "heads", "heads": [2], "vector": "v", "strength": 1.0})
    plan = compile_plan(add, loaded, {"v": vector})
    steered = trace_pass(loaded, plan, [PROMPT], batch_size=1).next_logits[0]

    def add_head_2(h: torch.Tensor) -> torch.Tensor:
        h[..., 2 * V_HEAD : 3 * V_HEAD] += vector[2 * V_HEAD : 3 * V_HEAD]
        return h

    assert torch.allclose(steered, _hooked_logits(reference, add_head_2), atol=1e-5)


def test_a_config_that_disagrees_with_the_projection_is_refused_not_guessed() -> None:
    hf = _model("llama")
    hf.config.head_dim = 8  # the config now claims 4 x 8 = 32; o_proj reads 64
    loaded = wrap_model(hf, byte_tokenizer())
    with pytest.raises(RecipeError) as caught:
        compile_plan(_recipe({"op": "zero", "site": "heads", "heads": [1]}), loaded, {})
    message = caught.value.diagnostics[0].message
    assert "reads 64 features" in message and "4 heads x 8" in message


def test_value_head_width_wins_over_the_rotary_head_dim() -> None:
    config = {"model_type": "deepseek_v3", "num_hidden_layers": 61, "hidden_size": 7168}
    config |= {"num_attention_heads": 128, "head_dim": 64, "v_head_dim": 128}
    shape = shape_from_config(config)
    assert (shape.head_dim, shape.heads_width, shape.head_columns(1)) == (128, 16384, (128, 256))
    plain = shape_from_config({**config, "v_head_dim": None, "head_dim": None})
    assert (plain.head_dim, plain.head_dim_key) == (56, "hidden_size / heads")


def test_generic_adapter_picks_the_list_called_in_sequence_not_the_first_of_that_length() -> None:
    hf = _model("opt", ffn_dim=128)
    decoder = hf.get_submodule("model.decoder")
    # a list of 3 modules that the forward never calls, placed before the real blocks
    children = dict(decoder._modules)
    decoder._modules.clear()
    decoder.add_module("decoy", torch.nn.ModuleList(torch.nn.LayerNorm(64) for _ in range(3)))
    for name, child in children.items():
        decoder.add_module(name, child)
    assert next(n for n, m in hf.named_modules() if isinstance(m, torch.nn.ModuleList)).endswith(
        "decoy"
    )
    adapter = wrap_model(hf, byte_tokenizer()).adapter
    assert (adapter.family, adapter.blocks) == ("generic", "model.decoder.layers")
    assert "in sequence" in adapter.why and "model.decoder.decoy" in adapter.why
