"""Benchmark: host memory and time of a steered generation on CPU, engine vs HF + hook.

    python benchmarks/memory_bench.py [--pairs 3] [--batch 64] [--new-tokens 256] [--quick]

A 2-layer, width-64 Llama with random weights and a 128256-token vocabulary (the shape where the
vocabulary, not the layers, dominates: issue 12) is saved to a temporary model folder with a
byte-level tokenizer and one random vector (safetensors). Each measurement is its own child
process, so that its peak RSS (getrusage ru_maxrss) is its own:
  (a) HF: `from_pretrained`, then `generate` of the batch with a forward hook adding the vector
      at layer 1 (the baseline);
  (b) engine: `load_recipe` + `compile_recipe` of a recipe naming the folder (`add` of the file
      vector at layer 1, generate mode, no baseline pass), then `run_recipe`.
Greedy, exactly N new tokens per prompt. Each child reports its RSS once the model is loaded and
its peak; "peak over loaded" is the difference: what the generation itself cost. Runs alternate
(a, b, a, b, ...); the table shows medians and the median of the per-pair ratios, and whether the
two produced the same tokens. Nothing is asserted: machines here are noisy; read the ratios.
`--quick` is a smoke-sized shape (batch 8, 32 tokens, 1 pair).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VOCAB = 128256
LAYER = 1
WORDS = ["The weather today is", "I think the movie was", "My trip to the city was", "Hi"]


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _prompts(batch: int) -> list[str]:
    return [f"{WORDS[i % len(WORDS)]} {i}" for i in range(batch)]


def build_folder(root: Path, batch: int, new_tokens: int) -> None:
    """The model folder, the vector file and the recipe, under `root` (a repository root)."""
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaConfig, LlamaForCausalLM

    from recipe_engine.resolve.builtin_build import byte_tokenizer

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=256,
        eos_token_id=256,
        pad_token_id=256,
    )
    LlamaForCausalLM(config).eval().save_pretrained(root / "model")
    tokenizer = byte_tokenizer()
    tokenizer.padding_side = "left"
    tokenizer.save_pretrained(root / "model")
    vector = torch.randn(64, generator=torch.Generator().manual_seed(1))
    save_file({"v": (vector * 4.0 / vector.norm()).contiguous()}, str(root / "v.safetensors"))
    (root / ".git").mkdir(exist_ok=True)
    recipe = {
        "version": 1,
        "name": "memory-bench",
        "model": {"id": "./model"},
        "vectors": {"v": {"kind": "file", "path": "v.safetensors", "key": "v"}},
        "interventions": [{"vector": "v", "op": "add", "layers": LAYER, "positions": "all"}],
        "run": {
            "mode": "generate",
            "prompts": _prompts(batch),
            "batch_size": batch,
            "compare_baseline": False,
            "generation": {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens},
        },
    }
    (root / "bench.yaml").write_text(json.dumps(recipe))  # JSON is YAML


def child_hf(root: Path, batch: int, new_tokens: int) -> dict[str, Any]:
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = AutoModelForCausalLM.from_pretrained(root / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(root / "model")
    tokenizer.padding_side = "left"
    vector = load_file(str(root / "v.safetensors"))["v"]
    loaded = _rss_mib()

    def hook(module: torch.nn.Module, inputs: object, output: torch.Tensor) -> torch.Tensor:
        return output + vector

    handle = hf.model.layers[LAYER].register_forward_hook(hook)
    start = time.perf_counter()
    encoded = tokenizer(_prompts(batch), return_tensors="pt", padding=True)
    with torch.inference_mode():
        out = hf.generate(
            **encoded,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            temperature=None,
            top_k=None,
            top_p=None,
        )
    seconds = time.perf_counter() - start
    handle.remove()
    tokens = out[:, encoded["input_ids"].shape[1] :].tolist()
    return {"loaded": loaded, "peak": _peak_mib(), "seconds": seconds, "tokens": tokens}


def child_engine(root: Path, batch: int, new_tokens: int) -> dict[str, Any]:
    from recipe_engine.api import compile_recipe, load_recipe, run_recipe

    compiled = compile_recipe(load_recipe(root / "bench.yaml"))
    loaded = _rss_mib()
    start = time.perf_counter()
    report = run_recipe(compiled)
    seconds = time.perf_counter() - start
    tokens = report.passes["steered"].generated
    return {"loaded": loaded, "peak": _peak_mib(), "seconds": seconds, "tokens": tokens}


def _measure(side: str, root: Path, batch: int, new_tokens: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", side, "--root", str(root)]
    command += ["--batch", str(batch), "--new-tokens", str(new_tokens)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{side} child failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _table(runs: dict[str, list[dict[str, Any]]]) -> str:
    def over(run: dict[str, Any]) -> float:
        return float(run["peak"] - run["loaded"])

    rss_ratios = [over(e) / over(h) for h, e in zip(runs["hf"], runs["engine"], strict=True)]
    time_ratios = [
        e["seconds"] / h["seconds"] for h, e in zip(runs["hf"], runs["engine"], strict=True)
    ]
    lines = [
        "| | loaded RSS (MiB) | peak over loaded (MiB) | time (s) |",
        "|---|---|---|---|",
    ]
    for side, label in (("hf", "HF generate + hook"), ("engine", "engine run_recipe")):
        rows = runs[side]
        lines.append(
            f"| {label} | {statistics.median(r['loaded'] for r in rows):.0f} "
            f"| {statistics.median(over(r) for r in rows):.0f} "
            f"| {statistics.median(r['seconds'] for r in rows):.2f} |"
        )
    lines.append(
        f"| engine / HF (median of pairs) | | {statistics.median(rss_ratios):.2f}x "
        f"| {statistics.median(time_ratios):.2f}x |"
    )
    pairs = ", ".join(f"{r:.2f}" for r in time_ratios)
    return "\n".join(lines) + f"\ntime ratio per pair: {pairs}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--quick", action="store_true", help="batch 8, 32 tokens, 1 pair")
    parser.add_argument("--child", choices=["hf", "engine"], help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child = child_hf if args.child == "hf" else child_engine
        print(json.dumps(child(args.root, args.batch, args.new_tokens)))
        return
    if args.quick:
        args.batch, args.new_tokens, args.pairs = 8, 32, 1
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_folder(root, args.batch, args.new_tokens)
        runs: dict[str, list[dict[str, Any]]] = {"hf": [], "engine": []}
        for pair in range(args.pairs):
            for side in ("hf", "engine") if pair % 2 == 0 else ("engine", "hf"):
                runs[side].append(_measure(side, root, args.batch, args.new_tokens))
        same = all(
            h["tokens"] == e["tokens"] for h, e in zip(runs["hf"], runs["engine"], strict=True)
        )
    print(
        f"2-layer width-64 random Llama, vocabulary {VOCAB}, batch {args.batch}, "
        f"{args.new_tokens} new tokens, greedy, one add at layer {LAYER}; {args.pairs} pairs"
    )
    print(_table(runs))
    print(f"identical tokens: {same}")


if __name__ == "__main__":
    main()
