"""`steer export --format hf`: plain transformers on the exported folder computes the steered model.

The reference runs in a subprocess that imports transformers and nothing of the engine's execute
stage or nnsight (asserted from its sys.modules), feeds each prompt alone (no padding) and
reports its next-token logits and greedy tokens; the engine's own steered pass (run_recipe)
must match them: logits to 1e-4 in float32, greedy tokens identical.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from recipe_engine.errors import RecipeError
from recipe_engine.export import export_recipe
from recipe_engine.pipeline import compile_recipe, load_recipe, run_recipe
from recipe_engine.vectors.sources import resolve_prompts

REPO = Path(__file__).resolve().parent.parent
NEW_TOKENS = 6
# Greedy generation on a few prompts, no baseline pass or metrics: the comparison needs only the
# steered pass (keeps the test to seconds).
GENERATE = [
    "run.mode=generate",
    f"run.generation={{max_new_tokens: {NEW_TOKENS}}}",
    "run.prompts=[The movie was, I think the food, Overall the trip]",
    "run.compare_baseline=false",
    "report.metrics=[]",
    "expect=[]",  # the gallery's claims bound metrics this run drops
]
# Gallery recipes that cannot be baked, and the field the refusal points at.
REFUSED = {
    "chat-assistant": "positions",
    "clamp-direction": "positions",
    "conditional-steering": "when",
    "project-out": "op",
}

REFERENCE = r"""
import json, sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
jobs = json.load(open(sys.argv[1]))
out = {}
for folder, prompts in jobs.items():
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    rows = []
    for prompt in prompts:
        ids = tok(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            logits = model(ids).logits[0, -1].tolist()
            new = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False,
                                 pad_token_id=tok.pad_token_id or 0)[0, ids.shape[1]:].tolist()
        rows.append({"logits": logits, "greedy": new})
    out[folder] = rows
banned = [m for m in sys.modules if m.startswith(("nnsight", "recipe_engine"))]
json.dump({"rows": out, "banned": banned}, open(sys.argv[2], "w"))
""".replace("NEW_TOKENS", str(NEW_TOKENS))


def reference(jobs: dict[str, list[str]], tmp: Path) -> dict[str, list[dict[str, Any]]]:
    (tmp / "jobs.json").write_text(json.dumps(jobs))
    subprocess.run(
        [sys.executable, "-c", REFERENCE, str(tmp / "jobs.json"), str(tmp / "out.json")],
        check=True,
        cwd=tmp,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    result = json.loads((tmp / "out.json").read_text())
    assert result["banned"] == [], "the reference must not import the engine or nnsight"
    rows: dict[str, list[dict[str, Any]]] = result["rows"]
    return rows


def engine_and_export(
    recipe: Path, out: Path, overrides: list[str] | None = None
) -> tuple[list[str], Any]:
    loaded = load_recipe(recipe, overrides=GENERATE if overrides is None else overrides)
    compiled = compile_recipe(loaded)
    steered = run_recipe(compiled).passes["steered"]
    export_recipe(compiled, "hf", out)
    doc = loaded.document
    prompts = resolve_prompts(loaded.recipe.run.prompts, doc, "/run/prompts", doc.path.parent)
    return list(prompts), steered


def assert_matches(steered: Any, rows: list[dict[str, Any]]) -> float:
    worst = 0.0
    for index, row in enumerate(rows):
        ours = steered.next_logits[index].float()
        theirs = torch.tensor(row["logits"])
        worst = max(worst, float((ours - theirs).abs().max()))
        assert worst <= 1e-4
        assert row["greedy"][: len(steered.generated[index])] == steered.generated[index]
    return worst


GALLERY = sorted(p for p in (REPO / "recipes").glob("*.yaml"))


def test_every_bakeable_gallery_recipe_matches_plain_transformers(tmp_path: Path) -> None:
    jobs: dict[str, list[str]] = {}
    engine: dict[str, Any] = {}
    for recipe in GALLERY:
        out = tmp_path / recipe.stem
        try:
            prompts, steered = engine_and_export(recipe, out)
        except RecipeError as exc:
            assert recipe.stem in REFUSED, f"{recipe.stem}: {exc}"
            line = str(exc).splitlines()[0]
            assert f"/{REFUSED[recipe.stem]}: cannot bake" in line
            assert line.startswith(f"recipes/{recipe.name}:")  # file:line:col
            assert not out.exists()
            continue
        assert recipe.stem not in REFUSED
        config = json.loads((out / "config.json").read_text())
        assert config["steering_export"]["recipe"] == recipe.stem
        jobs[str(out)] = prompts
        engine[str(out)] = steered
    assert len(jobs) >= 8  # every gallery recipe but the refused ones
    rows = reference(jobs, tmp_path)
    for folder, steered in engine.items():
        worst = assert_matches(steered, rows[folder])
        print(f"{Path(folder).name}: max |logit difference| {worst:.2e}")


def _byte_tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {symbol: i for i, symbol in enumerate(alphabet)} | {"<eos>": len(alphabet)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<eos>")


LLAMA_RECIPE = """\
version: 1
name: llama-bake
model: {id: ./llama, dtype: float32}
vectors:
  push: {kind: random, seed: 1, norm: 4.0}
  ablate: {kind: random, seed: 2, norm: 1.0}
interventions:
  - {vector: push, op: add, layers: 1, site: resid_post, strength: 1.5}
  - {vector: push, op: add, layers: 0, site: attn_out, strength: -0.7}
  - {vector: ablate, op: project_out, layers: all, site: attn_out}
  - {vector: ablate, op: project_out, layers: all, site: mlp_out}
  - {vector: ablate, op: project_out, layers: 0, site: resid_pre}
  - {op: zero, site: heads, heads: [1], layers: 2}
run: {mode: generate, prompts: [hello world, the cat sat], generation: {max_new_tokens: 6}}
report: {metrics: []}
"""


def test_llama_bias_switches_and_directional_ablation(tmp_path: Path) -> None:
    """A Llama has no output biases: the export turns on attention_bias and mlp_bias (every
    other new bias zero), orthogonalizes every writer and the embedding, and unties the
    embedding from the unembedding it changes."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        num_hidden_layers=3,
        hidden_size=64,
        intermediate_size=128,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        vocab_size=257,
        tie_word_embeddings=True,
        pad_token_id=256,
        eos_token_id=256,
        bos_token_id=256,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        LlamaForCausalLM(config).save_pretrained(tmp_path / "llama")
    _byte_tokenizer().save_pretrained(tmp_path / "llama")
    recipe = tmp_path / "bake.yaml"
    recipe.write_text(LLAMA_RECIPE)
    prompts, steered = engine_and_export(recipe, tmp_path / "baked", [])
    baked = json.loads((tmp_path / "baked" / "config.json").read_text())
    assert baked["attention_bias"] is True and baked["mlp_bias"] is True
    assert baked["tie_word_embeddings"] is False
    rows = reference({str(tmp_path / "baked"): prompts}, tmp_path)
    worst = assert_matches(steered, rows[str(tmp_path / "baked")])
    print(f"llama: max |logit difference| {worst:.2e}")


def test_cli_checks_out_against_format_before_any_work(tmp_path: Path) -> None:
    from recipe_engine.cli.main import main

    recipe = str(REPO / "recipes" / "activation-addition.yaml")
    assert main(["export", recipe, "--format", "hf", "--out", str(tmp_path / "x.gguf")]) == 2
    assert main(["export", recipe, "--format", "gguf-control-vector", "--out", str(tmp_path)]) == 2


def test_cli_formats_are_the_stages() -> None:
    from recipe_engine.cli.export import FORMATS
    from recipe_engine.export import EXPORT_FORMATS

    assert FORMATS == EXPORT_FORMATS
