"""llama.cpp applies an exported control vector on a non-llama family: Qwen2 (llama.cpp's
`qwen2` architecture, NEOX RoPE, q/k/v biases) steers like the engine.

A tiny random Qwen2 (tests/architecture_zoo.py: 3 layers, width 64) is saved as a transformers
folder, which the engine runs, and written as an F32 GGUF by the gguf package's writer
(tests/support/tiny_gguf.py), which llama.cpp runs: the same float32 weights on both sides, no
download. The control vector exported from the recipe is placed the way llama.cpp's common
loader places it (tests/test_llama_cpp_control_vector.py's helpers). Skipped without
llama-cpp-python, except on CI (CI=true), where its absence fails the test.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from recipe_engine.export import export_recipe
from recipe_engine.pipeline import compile_recipe, load_recipe, run_recipe
from tests.support.tiny_gguf import write_qwen2_gguf
from tests.test_export_families import _save_model
from tests.test_llama_cpp_control_vector import (
    _control_vector_buffer,
    _kl,
    _llama_cpp_logits,
    _need,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PROMPTS = ["hello world", "the cat sat on", "a b c d e", "steering vectors", "zzz"]
RECIPE = """\
version: 1
name: qwen2-control-vector
model: {{id: ./model, dtype: float32}}
vectors:
  push: {{kind: random, seed: 5, norm: 2.0}}
interventions:
  - {{vector: push, op: add, layers: {{1: 1.0, 2: -0.5}}, site: resid_post}}
run: {{mode: trace, prompts: {prompts}, compare_baseline: true}}
report: {{metrics: []}}
"""


def test_llama_cpp_applies_the_control_vector_to_qwen2_like_the_engine(tmp_path: Path) -> None:
    _need("llama-cpp-python", importlib.util.find_spec("llama_cpp") is not None)
    pytest.importorskip("gguf")
    _save_model("qwen2", tmp_path / "model")
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "model", dtype=torch.float32)
    assert hf.config.model_type == "qwen2" and hf.model.layers[0].self_attn.q_proj.bias is not None
    write_qwen2_gguf(hf, tmp_path / "qwen2-f32.gguf")

    recipe = tmp_path / "cv.yaml"
    recipe.write_text(RECIPE.format(prompts=PROMPTS))
    compiled = compile_recipe(load_recipe(recipe))
    passes = run_recipe(compiled).passes
    export_recipe(compiled, "gguf-control-vector", tmp_path / "push.gguf")

    tokenizer = compiled.model.tokenizer
    ids = [tokenizer(p)["input_ids"] for p in PROMPTS]
    gguf_path = tmp_path / "qwen2-f32.gguf"
    import llama_cpp

    # an F32 KV cache (llama.cpp's default is F16, which alone moves logits ~1e-4)
    f32_cache = {"type_k": llama_cpp.GGML_TYPE_F32, "type_v": llama_cpp.GGML_TYPE_F32}
    plain = _llama_cpp_logits(gguf_path, ids, None, **f32_cache)
    cvec = _control_vector_buffer(tmp_path / "push.gguf")
    steered = _llama_cpp_logits(gguf_path, ids, cvec, **f32_cache)
    engine_plain = passes["baseline"].next_logits.float()
    engine_steered = passes["steered"].next_logits.float()

    unsteered = float((engine_plain - plain).abs().max())
    moved = float((engine_plain - engine_steered).abs().max())
    difference = float((engine_steered - steered).abs().max())
    kl = float(_kl(engine_steered, steered).max())
    print(
        f"qwen2, llama.cpp vs engine: unsteered max |logit diff| {unsteered:.2e}, steered "
        f"{difference:.2e} (KL max {kl:.2e}); the steering moved logits by {moved:.2e}"
    )
    # the same model on both sides before steering: float32 throughout, only the kernels differ
    # (measured 1.8e-7 on logits of order 1)
    assert unsteered < 1e-5
    # the steering is real, far beyond the tolerance, and llama.cpp places it where the engine does
    assert moved > 1000 * 1e-5
    assert difference < 1e-5
    assert bool((engine_steered.argmax(-1) == steered.argmax(-1)).all())
