"""Benchmark: steered generation through the engine vs Hugging Face generate with a hook.

    python benchmarks/engine_bench.py [--repeats 5] [--new-tokens 32] [--batch 8]

On a GPT-2-small-size model with random weights (12 layers, width 768, vocab 50257), batch 8,
greedy decoding of N new tokens, a vector added at layer 6 on every token and every step:
  (a) HF `generate` with an equivalent forward hook (the baseline)
  (b) the engine's generate pass (model already loaded, plan compiled)
measured alternately in the same run; prints the median of (b)/(a) per pair. Then the engine's
own per-run overhead: load the YAML, validate, build a random vector and compile (no model load).
Last, the cost of NDIF's serialization: one steered trace of the batch locally vs through
`remote="local"` (backend remote-local: serialize, deserialize, run here), paired, and whether
their logits are identical.
Nothing is asserted: machines here are noisy; read the ratios.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from recipe_engine.api import load_recipe
from recipe_engine.compiler import compile_plan
from recipe_engine.execute.runner import generate_pass, trace_pass
from recipe_engine.format.run_spec import GenerationSpec
from recipe_engine.resolve.builtin_build import byte_tokenizer
from recipe_engine.resolve.model_loader import wrap_model
from recipe_engine.vectors import build_vectors

RECIPE = """\
version: 1
name: bench
model: {id: builtin:tiny-random}
vectors:
  v: {kind: random, seed: 0, norm: 4.0}
interventions:
  - {vector: v, op: add, layers: 6, site: resid_post, positions: all, strength: 1.0}
run:
  mode: generate
  prompts: ["The weather today is"]
  generation: {max_new_tokens: 32, min_new_tokens: 32}
"""

PROMPTS = [
    "The weather today is",
    "I think the movie was",
    "My trip to the city was",
    "The new phone is",
    "Yesterday the meeting",
    "Our neighbours said that the",
    "In the morning we",
    "She told me the story about",
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=12,
        n_embd=768,
        n_head=12,
        vocab_size=50257,
        n_positions=1024,
        bos_token_id=256,
        eos_token_id=256,
    )
    hf = GPT2LMHeadModel(config).eval()
    tokenizer = byte_tokenizer()
    model = wrap_model(hf, tokenizer, identity="gpt2-small-random")
    prompts = (PROMPTS * ((args.batch + len(PROMPTS) - 1) // len(PROMPTS)))[: args.batch]
    n = args.new_tokens

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        (Path(tmp) / ".git").mkdir()
        path.write_text(RECIPE)
        loaded = load_recipe(path, check_model=False)
        vectors = build_vectors(loaded.recipe, model, loaded.document)
        plan = compile_plan(loaded.recipe, model, {k: v.tensor for k, v in vectors.items()})
        vector = vectors["v"].tensor

        def hook(module: torch.nn.Module, inputs: object, output: torch.Tensor) -> torch.Tensor:
            return output + vector

        def hf_generate() -> list[list[int]]:
            encoded = tokenizer(prompts, return_tensors="pt", padding=True)
            handle = hf.transformer.h[6].register_forward_hook(hook)
            try:
                with torch.inference_mode():
                    out = hf.generate(
                        **encoded,
                        max_new_tokens=n,
                        min_new_tokens=n,
                        do_sample=False,
                        pad_token_id=tokenizer.pad_token_id,
                    )
            finally:
                handle.remove()
            return out[:, encoded["input_ids"].shape[1] :].tolist()

        gen = GenerationSpec(max_new_tokens=n, min_new_tokens=n)

        def engine_generate() -> list[list[int]]:
            return generate_pass(model, plan, prompts, gen, batch_size=len(prompts)).generated

        # The hook also adds at left-padded positions, which attention masks out, so the real
        # tokens come out the same as the engine's (checked below).
        tokenizer.padding_side = "left"
        hf_generate(), engine_generate()  # warm up
        ratios, hf_times, engine_times = [], [], []
        same = True
        for _ in range(args.repeats):
            start = time.perf_counter()
            reference = hf_generate()
            hf_s = time.perf_counter() - start
            start = time.perf_counter()
            ours = engine_generate()
            engine_s = time.perf_counter() - start
            same = same and ours == reference
            hf_times.append(hf_s)
            engine_times.append(engine_s)
            ratios.append(engine_s / hf_s)

        shipped = dataclasses.replace(model, remote="local", backend="remote-local", _widths={})
        (
            trace_pass(model, plan, prompts, len(prompts)),
            trace_pass(shipped, plan, prompts, len(prompts)),
        )
        local_times, shipped_times, identical = [], [], True
        for _ in range(args.repeats):
            start = time.perf_counter()
            local_logits = trace_pass(model, plan, prompts, len(prompts)).next_logits
            local_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            shipped_logits = trace_pass(shipped, plan, prompts, len(prompts)).next_logits
            shipped_times.append(time.perf_counter() - start)
            identical = identical and torch.equal(local_logits, shipped_logits)

        overhead = []
        for _ in range(20):
            start = time.perf_counter()
            again = load_recipe(path, check_model=False)
            built = build_vectors(again.recipe, model, again.document)
            compile_plan(again.recipe, model, {k: v.tensor for k, v in built.items()})
            overhead.append(time.perf_counter() - start)

    print(
        f"model: GPT-2 12x768 (random), batch {len(prompts)}, {n} new tokens, greedy, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"HF generate + forward hook : {statistics.median(hf_times) * 1000:8.1f} ms (median)")
    print(f"engine generate            : {statistics.median(engine_times) * 1000:8.1f} ms (median)")
    print(
        f"engine / HF (median of {args.repeats} paired runs): {statistics.median(ratios):.3f}"
        "   target <= 1.05"
    )
    print(f"identical tokens: {same}")
    print(
        f"engine per-run overhead (YAML + validate + vector + compile): "
        f"{statistics.median(overhead) * 1000:.1f} ms (median of 20)   target <= 50 ms"
    )
    local_ms = statistics.median(local_times) * 1000
    shipped_ms = statistics.median(shipped_times) * 1000
    print(
        f"one steered trace, local {local_ms:.1f} ms vs remote-local round trip "
        f"{shipped_ms:.1f} ms: {shipped_ms / local_ms:.2f}x, +{shipped_ms - local_ms:.1f} ms of "
        f"serialization; identical logits: {identical}"
    )


if __name__ == "__main__":
    main()
