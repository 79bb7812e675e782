"""Benchmark: contrastive vector extraction through the engine vs a hand-written PyTorch script.

    python benchmarks/vectors_bench.py [--repeats 3] [--prompts 256] [--subset 64]
                                       [--threads N] [--no-memory]

On a GPT-2-small-size model with random weights (12 layers, width 768, vocab 50257,
torch.manual_seed(0)) and the engine's byte tokenizer (one token per byte), a mean_diff
contrastive vector at layer 6 resid_post, position last, over N prompts (N/2 positive, N/2
negative, 19-73 bytes, made from templates), computed by these paths:
  engine          build_vectors(recipe, model, cache=False): batches of max(run.batch_size, 16)
                  prompts, one nnsight trace per batch, stopped after layer 6
  raw             the same left-padded batches through `hf(**encoded, position_ids=...)` under
                  inference_mode, a forward hook on transformer.h[6] keeping the last token:
                  the full forward, LM head included
  raw-early       the same, but the hook raises once it has the rows (layers 7-11 and the LM
                  head are skipped, as the engine skips them)
  per-prompt      read_activations(..., batch_size=1): one nnsight trace per prompt
  batched-32      read_activations(..., batch_size=32)
  raw-per-prompt  raw-early with one prompt per forward: what one forward per prompt costs
                  without nnsight, to tell nnsight's per-trace cost from the compute's
The two one-per-prompt paths run on the first --subset/2 prompts of each class (default 32+32
in all) and are compared per prompt. Every path runs once per repeat, in an order rotated each
repeat; ratios are taken within a repeat and their median over repeats is printed, next to
each path's median time. Then the engine's vector against the raw scripts' (max abs diff), the
rows read from left-padded batches against those read one prompt at a time (no padding), and
each path's peak memory: the script re-invokes itself with `--measure PATH` once per path,
before it builds its own model (a child's ru_maxrss starts from its parent's RSS at the fork);
the child builds the model, resets its high-water mark (/proc/self/clear_refs) so that the
model build's transient peak does not hide the path's, runs the path once and prints
ru_maxrss. Last, the total time and the load average at the start and the end: with 2 torch
threads on 2 busy CPUs every op waits on a descheduled thread and the small ops of batch 1 suffer
most (the batched speed-up is then overstated); --threads 1 is steadier there. Roughly 3-4 min
on 2 idle cores (6 with another job on one of them). Nothing is asserted: machines here are
noisy; read the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from recipe_engine.format.recipe import Recipe
from recipe_engine.resolve.builtin_build import byte_tokenizer
from recipe_engine.resolve.model_loader import LoadedModel, wrap_model
from recipe_engine.vectors import build_vectors
from recipe_engine.vectors.extraction import read_activations

LAYER = 6
PATHS = ("engine", "raw", "raw-early", "per-prompt", "batched-32", "raw-per-prompt")
ONE_PER_PROMPT = ("per-prompt", "raw-per-prompt")  # run on the subset

SUBJECTS = ["film", "meal", "hotel", "concert", "book", "trip to the coast", "new phone", "class"]
POSITIVE = ["was wonderful", "made me very happy", "was a real delight", "was great"]
NEGATIVE = ["was awful", "made me very sad", "was a real letdown", "was terrible"]
FRAMES = [
    "The {s} {a}.",
    "Honestly, the {s} {a}",
    "I have to say that the {s} {a} overall,",
    "Last week my friend told me the {s} {a}, and",
]

Rows = tuple[torch.Tensor, torch.Tensor]  # [n_positive, width], [n_negative, width]


def make_prompts(adjectives: list[str], n: int) -> list[str]:
    """n prompts cycling through 128 distinct ones; neighbours differ in length."""
    combos = itertools.product(SUBJECTS, adjectives, FRAMES)
    prompts = [frame.format(s=s, a=a) for s, a, frame in combos]
    return list(itertools.islice(itertools.cycle(prompts), n))


def recipe_for(positive: list[str], negative: list[str]) -> Recipe:
    return Recipe.model_validate(
        {
            "version": 1,
            "name": "vectors-bench",
            "model": {"id": "builtin:tiny-random"},  # unused: the model is passed in
            "vectors": {
                "v": {
                    "kind": "contrastive",
                    "layer": LAYER,
                    "site": "resid_post",
                    "position": "last",
                    "method": "mean_diff",
                    "positive": positive,
                    "negative": negative,
                }
            },
            "interventions": [
                {"vector": "v", "op": "add", "layers": LAYER, "site": "resid_post", "strength": 1}
            ],
            "run": {"mode": "generate", "prompts": ["The weather today is"]},
        }
    )


def mean_diff(rows: Rows) -> torch.Tensor:
    return rows[0].mean(dim=0) - rows[1].mean(dim=0)


class _Captured(Exception):
    """Raised by the early-stop hook once the layer's output is kept."""


class Bench:
    def __init__(self, n_prompts: int, subset: int) -> None:
        torch.manual_seed(0)
        config = GPT2Config(n_layer=12, n_embd=768, n_head=12, vocab_size=50257)
        self.hf: Any = GPT2LMHeadModel(config).eval()
        self.tokenizer = byte_tokenizer()
        self.model: LoadedModel = wrap_model(self.hf, self.tokenizer, identity="gpt2-small-rnd")
        self.tokenizer.padding_side = "left"
        self.positive = make_prompts(POSITIVE, n_prompts // 2)
        self.negative = make_prompts(NEGATIVE, n_prompts // 2)
        self.subset = (self.positive[: subset // 2], self.negative[: subset // 2])
        self.recipe = recipe_for(self.positive, self.negative)
        # What vectors/build.py's _Builder extracts with.
        self.batch_size = max(self.recipe.run.batch_size, 16)

    def engine(self, recipe: Recipe) -> torch.Tensor:
        return build_vectors(recipe, self.model, cache=False)["v"].tensor

    def read(self, prompts: tuple[list[str], list[str]], batch_size: int) -> Rows:
        def rows(texts: list[str]) -> torch.Tensor:
            return read_activations(
                self.model,
                texts,
                layer=LAYER,
                site="resid_post",
                module=None,
                position="last",
                batch_size=batch_size,
            )

        return rows(prompts[0]), rows(prompts[1])

    def raw(self, prompts: tuple[list[str], list[str]], batch_size: int, early: bool) -> Rows:
        kept: list[torch.Tensor] = []

        def hook(module: torch.nn.Module, inputs: object, output: Any) -> None:
            hidden = output[0] if isinstance(output, tuple) else output
            kept.append(hidden[:, -1, :].float().clone())
            if early:
                raise _Captured

        def rows(texts: list[str]) -> torch.Tensor:
            kept.clear()
            for start in range(0, len(texts), batch_size):
                encoded = self.tokenizer(
                    texts[start : start + batch_size], return_tensors="pt", padding=True
                )
                # Left padding must not shift GPT-2's absolute positions (HF generate and
                # nnsight count the same way): each row counts from its first real token.
                positions = (encoded["attention_mask"].cumsum(-1) - 1).clamp(min=0)
                with contextlib.suppress(_Captured):
                    self.hf(**encoded, position_ids=positions)
            return torch.cat(kept)

        handle = self.hf.transformer.h[LAYER].register_forward_hook(hook)
        try:
            with torch.inference_mode():
                return rows(prompts[0]), rows(prompts[1])
        finally:
            handle.remove()

    def run(self, name: str, warm: bool = False) -> tuple[torch.Tensor, Rows | None, int]:
        """One path over its prompts (a few of them if warm): (vector, rows or None, prompts)."""
        full = (self.positive, self.negative)
        prompts = self.subset if name in ONE_PER_PROMPT else full
        if warm:
            prompts = (prompts[0][:16], prompts[1][:16])
        count = len(prompts[0]) + len(prompts[1])
        if name == "engine":
            recipe = recipe_for(*prompts) if warm else self.recipe
            return self.engine(recipe), None, count
        paths: dict[str, Callable[[], Rows]] = {
            "raw": lambda: self.raw(prompts, self.batch_size, early=False),
            "raw-early": lambda: self.raw(prompts, self.batch_size, early=True),
            "per-prompt": lambda: self.read(prompts, 1),
            "batched-32": lambda: self.read(prompts, 32),
            "raw-per-prompt": lambda: self.raw(prompts, 1, early=True),
        }
        rows = paths[name]()
        return mean_diff(rows), rows, count


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(name: str, n_prompts: int, subset: int) -> None:
    """Child process: build the model, run one path once, print its memory as JSON."""
    bench = Bench(n_prompts, subset)
    gc.collect()
    build_peak = _maxrss_mib()
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # reset the high-water mark to the current RSS (Linux >= 4.0)
        reset = True
    except OSError:
        reset = False
    start = _maxrss_mib()
    bench.run(name)
    peak = _maxrss_mib()
    print(json.dumps({"build_peak": build_peak, "start": start, "peak": peak, "reset": reset}))


def memory(n_prompts: int, subset: int, threads: int | None) -> dict[str, dict[str, Any]]:
    result = {}
    for name in PATHS:
        command = [sys.executable, __file__, "--measure", name]
        command += ["--prompts", str(n_prompts), "--subset", str(subset)]
        command += ["--threads", str(threads)] if threads else []
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        result[name] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=256, help="positive + negative")
    parser.add_argument(
        "--subset", type=int, default=64, help="prompts for the one-per-prompt paths"
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--no-memory", action="store_true", help="skip the subprocess runs")
    parser.add_argument("--measure", choices=PATHS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    subset = min(args.subset, args.prompts)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.measure:
        measure(args.measure, args.prompts, subset)
        return
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    # Children first, while this process is small: a child's ru_maxrss starts from it.
    mem = None if args.no_memory else memory(args.prompts, subset, args.threads)

    bench = Bench(args.prompts, subset)
    for name in PATHS:
        bench.run(name, warm=True)
    per_prompt: dict[str, list[float]] = {name: [] for name in PATHS}  # seconds per prompt
    totals: dict[str, list[float]] = {name: [] for name in PATHS}
    results: dict[str, tuple[torch.Tensor, Rows | None, int]] = {}
    for repeat in range(args.repeats):
        shift = repeat % len(PATHS)
        for name in PATHS[shift:] + PATHS[:shift]:
            start = time.perf_counter()
            results[name] = bench.run(name)
            elapsed = time.perf_counter() - start
            totals[name].append(elapsed)
            per_prompt[name].append(elapsed / results[name][2])

    def ratio(a: str, b: str) -> float:
        pairs = zip(per_prompt[a], per_prompt[b], strict=True)
        return statistics.median(x / y for x, y in pairs)

    n = args.prompts // 2 * 2
    lengths = [len(bench.tokenizer(p)["input_ids"]) for p in bench.positive + bench.negative]
    print(
        f"model: GPT-2 12x768 (random), byte tokenizer; {n} prompts ({n // 2} positive, "
        f"{n // 2} negative, {min(lengths)}-{max(lengths)} tokens); layer {LAYER} resid_post, "
        f"last token, mean_diff; {torch.get_num_threads()} threads; medians of {args.repeats} "
        "repeats"
    )
    labels = {
        "engine": f"(a)  engine build_vectors, batch {bench.batch_size}",
        "raw": f"(b)  raw hf() + hook, full forward, batch {bench.batch_size}",
        "raw-early": f"(b') raw hf() + hook, early stop, batch {bench.batch_size}",
        "per-prompt": "(c)  engine read_activations, batch 1",
        "batched-32": "(c)  engine read_activations, batch 32",
        "raw-per-prompt": "     raw hf() + hook, early stop, batch 1",
    }
    for name in PATHS:
        count = results[name][2]
        note = f"   ({count} of {n} prompts)" if count != n else ""
        print(
            f"  {labels[name]:<46}: {statistics.median(totals[name]) * 1000:8.0f} ms  "
            f"{statistics.median(per_prompt[name]) * 1000:6.2f} ms/prompt{note}"
        )
    print(f"engine / raw full forward (b)        : {ratio('engine', 'raw'):.3f}   target <= 1.15")
    print(f"engine / raw early stop (b')         : {ratio('engine', 'raw-early'):.3f}")
    scaled = f"per prompt; batch 1 timed on {subset} prompts" if subset != n else "per prompt"
    print(
        f"batched speed-up, batch 1 / batch 32 : {ratio('per-prompt', 'batched-32'):.2f}x"
        f"   target >= 5x   ({scaled})"
    )
    print(
        f"  batch 1 / batch {bench.batch_size}: engine {ratio('per-prompt', 'engine'):.2f}x, "
        f"raw early stop {ratio('raw-per-prompt', 'raw-early'):.2f}x; engine / raw at batch 1: "
        f"{ratio('per-prompt', 'raw-per-prompt'):.3f}"
    )

    def diff(a: torch.Tensor, b: torch.Tensor) -> str:
        return f"max abs diff {float((a - b).abs().max()):.3g} (max abs {float(b.abs().max()):.3g})"

    engine_vec = results["engine"][0]
    print(f"engine vector vs raw full forward    : {diff(engine_vec, results['raw'][0])}")
    print(f"engine vector vs raw early stop      : {diff(engine_vec, results['raw-early'][0])}")
    one = results["per-prompt"][1]
    assert one is not None
    k = len(one[0])
    for name in ("batched-32", "raw-early", "raw-per-prompt"):
        rows = results[name][1]
        assert rows is not None
        padded = torch.cat([rows[0][:k], rows[1][:k]])
        print(f"rows vs batch 1 (unpadded), {name:<14}: {diff(padded, torch.cat(one))}")

    if mem is not None:
        print("peak RSS per path (a fresh process each: model built, high-water mark reset, path)")
        for name, m in mem.items():
            note = "" if m["reset"] else "   (could not reset: includes the model build)"
            print(
                f"  {labels[name]:<46}: {m['peak']:7.1f} MiB, +{m['peak'] - m['start']:6.1f} MiB "
                f"over the loaded model (build peak {m['build_peak']:.0f} MiB){note}"
            )
    print(
        f"total {time.perf_counter() - started:.0f} s; 1-minute load average {load_before:.2f} "
        f"at the start, {os.getloadavg()[0]:.2f} at the end, on {os.cpu_count()} CPUs (a load "
        "above the CPU count means another process competed for them: the timings are then noisy)"
    )


if __name__ == "__main__":
    main()
