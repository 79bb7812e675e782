"""Benchmark: steered generation and vector extraction on a GPU (issue 12's table).

    python benchmarks/gpu_bench.py [--repeats 5] [--new-tokens 128] [--batches 8 64]
                                   [--prompts 1024] [--smoke]

A random-weight Llama with the shape of a 1.2B model (16 layers, width 2048, GQA 32/8 heads,
MLP 8192, vocabulary 128256, tied embeddings, bf16), built from a config on the device: nothing
is downloaded. Prompts go through the engine's byte tokenizer (ids < 257), left-padded.

Generation, greedy, N new tokens, one `add` of a random vector (norm 4) at layer n/2 on every
position and every step, per batch size, paths measured alternately in the same run (the order
rotates each repeat):
  hf        HF `generate` + a forward hook adding the vector (the baseline)
  nnsight   plain nnsight `generate` with the same add in `tracer.iter[:]`, ids saved
  engine    the engine's `generate_pass` (model loaded, plan compiled), everything it keeps
Extraction: a contrastive mean_diff vector at layer n/2, `position: last`, over --prompts
prompts (half positive, half negative):
  engine    `build_vectors(..., cache=False)` with run.batch_size 64
  raw-early the same prompts in batches of 64 through `hf(...)` with a forward hook that keeps
            the last row in float32 and raises to stop the forward at the layer
Printed per path: median seconds, tokens/s (generation) or prompts/s, the median over repeats
of the time ratio against the baseline measured in the same repeat, peak GPU memory (CUDA
only: `torch.cuda.max_memory_allocated` over one run of the path), whether the generated tokens
equal the baseline's, and the two extraction vectors' largest difference over the largest
entry. Nothing is asserted: read the ratios.

Without CUDA (or with --smoke) a scaled-down shape runs instead (4 layers, width 64, GQA 4/2,
vocabulary 512, bf16; 8 new tokens; batches 2 and 8; 64 prompts; 3 repeats), as a smoke test
of every path on a CPU: its ratios say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from recipe_engine.compiler import compile_plan
from recipe_engine.execute.runner import generate_pass
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.run_spec import GenerationSpec
from recipe_engine.resolve.builtin_build import byte_tokenizer
from recipe_engine.resolve.loaded_model import LoadedModel
from recipe_engine.resolve.model_loader import wrap_model
from recipe_engine.vectors import build_vectors

SHAPES: dict[str, dict[str, Any]] = {
    "1.2B": dict(
        num_hidden_layers=16,
        hidden_size=2048,
        intermediate_size=8192,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128256,
    ),
    "smoke": dict(
        num_hidden_layers=4,
        hidden_size=64,
        intermediate_size=128,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=512,
    ),
}
SUBJECTS = ["The river", "My neighbour", "This small town", "The old machine", "Our team"]
ENDINGS = ["was", "seemed rather", "had always been", "turned out to be", "is, as ever,"]


class _Stop(Exception):
    """Raised by the raw extraction hook: nothing above the layer is needed."""


@dataclass
class Bench:
    hf: Any
    model: LoadedModel
    device: torch.device
    layer: int
    vector: torch.Tensor  # the engine's plan vector: model dtype, model device
    plan: Any  # the engine's compiled plan holding that vector
    new_tokens: int

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def encode(self, prompts: list[str]) -> Any:
        return self.model.tokenizer(prompts, return_tensors="pt", padding=True).to(self.device)

    def hf_generate(self, prompts: list[str]) -> list[list[int]]:
        encoded = self.encode(prompts)
        handle = self.hf.model.layers[self.layer].register_forward_hook(
            lambda _m, _i, out: out + self.vector
        )
        n = self.new_tokens
        try:
            with torch.inference_mode():
                out = self.hf.generate(
                    **encoded, max_new_tokens=n, min_new_tokens=n, do_sample=False
                )
        finally:
            handle.remove()
        ids: list[list[int]] = out[:, encoded["input_ids"].shape[1] :].tolist()
        return ids

    def nnsight_generate(self, prompts: list[str]) -> list[list[int]]:
        nn, n, vector = self.model.nn, self.new_tokens, self.vector
        kwargs = dict(max_new_tokens=n, min_new_tokens=n, do_sample=False)
        with torch.inference_mode(), nn.generate(**kwargs) as tracer:
            with tracer.invoke(prompts):
                for _ in tracer.iter[:]:
                    block = nn.model.layers[self.layer]
                    block.output = block.output + vector
            with tracer.invoke():
                out = tracer.result.save()
        ids: list[list[int]] = out[:, -n:].tolist()
        return ids

    def engine_generate(self, prompts: list[str]) -> list[list[int]]:
        gen = GenerationSpec(max_new_tokens=self.new_tokens, min_new_tokens=self.new_tokens)
        generated: list[list[int]] = generate_pass(
            self.model, self.plan, prompts, gen, batch_size=len(prompts)
        ).generated
        return generated

    def raw_extract(self, positive: list[str], negative: list[str], batch: int) -> torch.Tensor:
        kept: list[torch.Tensor] = []

        def hook(_m: Any, _i: Any, out: Any) -> None:
            kept.append((out[0] if isinstance(out, tuple) else out)[:, -1, :].float())
            raise _Stop

        def mean(texts: list[str]) -> torch.Tensor:
            kept.clear()
            for start in range(0, len(texts), batch):
                encoded = self.encode(texts[start : start + batch])
                positions = (encoded["attention_mask"].cumsum(-1) - 1).clamp(min=0)
                with contextlib.suppress(_Stop):
                    self.hf(**encoded, position_ids=positions)
            return torch.cat(kept).mean(dim=0)

        handle = self.hf.model.layers[self.layer].register_forward_hook(hook)
        try:
            with torch.inference_mode():
                return (mean(positive) - mean(negative)).cpu()
        finally:
            handle.remove()


def _recipe(layer: int, positive: list[str], negative: list[str], batch: int) -> Recipe:
    return Recipe.model_validate(
        {
            "version": 1,
            "name": "gpu-bench",
            "model": {"id": "builtin:tiny-random-llama"},  # not loaded: the model is passed
            "vectors": {
                "steer": {"kind": "random", "seed": 0, "norm": 4.0},
                "contrast": {
                    "kind": "contrastive",
                    "layer": layer,
                    "position": "last",
                    "positive": positive,
                    "negative": negative,
                },
            },
            "interventions": [
                {"vector": "steer", "op": "add", "layers": layer, "positions": "all"}
            ],
            "run": {"mode": "generate", "prompts": ["x"], "batch_size": batch},
        }
    )


def _prompts(n: int, mood: str) -> list[str]:
    tails = ["", f" and {mood}", f", very {mood} indeed"]
    return [f"{SUBJECTS[i % 5]} {ENDINGS[(i // 5) % 5]} {mood}{tails[i % 3]}" for i in range(n)]


def _timed(bench: Bench, run: Callable[[], Any]) -> tuple[float, Any, float | None]:
    if bench.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    bench.sync()
    start = time.perf_counter()
    value = run()
    bench.sync()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**20 if bench.device.type == "cuda" else None
    return seconds, value, peak


def _measure(
    bench: Bench, paths: dict[str, Callable[[], Any]], repeats: int
) -> dict[str, dict[str, Any]]:
    names = list(paths)
    for name in names:  # warm up (kernels, caches, nnsight's source parsing)
        paths[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    ratios: dict[str, list[float]] = {name: [] for name in names}
    results: dict[str, dict[str, Any]] = {name: {"peak": None} for name in names}
    for repeat in range(repeats):
        order = names[repeat % len(names) :] + names[: repeat % len(names)]
        this: dict[str, float] = {}
        for name in order:
            seconds, value, peak = _timed(bench, paths[name])
            this[name] = seconds
            results[name]["value"] = value
            results[name]["peak"] = peak
        for name in names:
            times[name].append(this[name])
            ratios[name].append(this[name] / this[names[0]])
    for name in names:
        results[name]["s"] = statistics.median(times[name])
        results[name]["ratio"] = statistics.median(ratios[name])
    return results


def _mib(peak: float | None) -> str:
    return "-" if peak is None else f"{peak:,.0f}"


def _generation_table(bench: Bench, batches: list[int], repeats: int) -> None:
    n = bench.new_tokens
    print(f"\ngeneration: greedy, {n} new tokens, add at layer {bench.layer} on every step")
    print("| batch | path | median s | tok/s | vs HF | peak GPU MiB | tokens = HF |")
    print("|---|---|---|---|---|---|---|")
    for batch in batches:
        prompts = _prompts(batch, "calm")
        paths: dict[str, Callable[[], Any]] = {
            "hf": partial(bench.hf_generate, prompts),
            "nnsight": partial(bench.nnsight_generate, prompts),
            "engine": partial(bench.engine_generate, prompts),
        }
        results = _measure(bench, paths, repeats)
        for name, row in results.items():
            same = "yes" if row["value"] == results["hf"]["value"] else "NO"
            print(
                f"| {batch} | {name} | {row['s']:.3f} | {batch * n / row['s']:,.0f} | "
                f"{row['ratio']:.2f}x | {_mib(row['peak'])} | {same} |"
            )


def _extraction_table(bench: Bench, n_prompts: int, batch: int, repeats: int) -> None:
    positive, negative = _prompts(n_prompts // 2, "wonderful"), _prompts(n_prompts // 2, "awful")
    recipe = _recipe(bench.layer, positive, negative, batch)
    paths: dict[str, Callable[[], Any]] = {
        "raw-early": lambda: bench.raw_extract(positive, negative, batch),
        "engine": lambda: (
            build_vectors(recipe, bench.model, None, ["contrast"], cache=False)["contrast"].tensor
        ),
    }
    results = _measure(bench, paths, repeats)
    print(
        f"\nextraction: contrastive mean_diff, layer {bench.layer}, position last, "
        f"{n_prompts} prompts, batch {batch}"
    )
    print("| path | median s | prompts/s | vs raw-early | peak GPU MiB |")
    print("|---|---|---|---|---|")
    for name, row in results.items():
        print(
            f"| {name} | {row['s']:.3f} | {n_prompts / row['s']:,.0f} | {row['ratio']:.2f}x | "
            f"{_mib(row['peak'])} |"
        )
    want, got = results["raw-early"]["value"], results["engine"]["value"]
    diff = float((got - want).abs().max() / want.abs().max())
    print(f"engine vs raw-early vector: max |diff| / max |entry| = {diff:.2e}")


def _build(shape: str, device: torch.device, new_tokens: int) -> Bench:
    config = LlamaConfig(
        **SHAPES[shape],
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=256,
        eos_token_id=256,
        pad_token_id=256,
    )
    torch.manual_seed(0)
    hf: Any
    with torch.device(device):
        hf = LlamaForCausalLM(config)
    hf = hf.to(torch.bfloat16).eval()
    hf.generation_config.pad_token_id = 256
    model = wrap_model(hf, byte_tokenizer(), identity=f"random-llama-{shape}")
    layer = config.num_hidden_layers // 2
    recipe = _recipe(layer, ["a"], ["b"], 8)
    built = build_vectors(recipe, model, None, ["steer"], cache=False)
    plan = compile_plan(recipe, model, {"steer": built["steer"].tensor})
    vector = plan.ops[0].vector
    assert vector is not None
    return Bench(hf, model, device, layer, vector, plan, new_tokens)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="the small CPU shape")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--new-tokens", type=int)
    parser.add_argument("--batches", type=int, nargs="+")
    parser.add_argument("--prompts", type=int)
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    smoke = args.smoke or not cuda
    device = torch.device("cuda" if cuda and not args.smoke else "cpu")
    shape = "smoke" if smoke else "1.2B"
    repeats = args.repeats or (3 if smoke else 5)
    new_tokens = args.new_tokens or (8 if smoke else 128)
    batches = args.batches or ([2, 8] if smoke else [8, 64])
    n_prompts = args.prompts or (64 if smoke else 1024)
    started = time.perf_counter()
    bench = _build(shape, device, new_tokens)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"random Llama, shape {shape}, bf16, on {name} ({device}); torch {torch.__version__}")
    if smoke:
        print("smoke mode: a scaled-down shape; the ratios say nothing about a GPU")
    _generation_table(bench, batches, repeats)
    _extraction_table(bench, n_prompts, 64, repeats)
    print(f"\ntotal {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
