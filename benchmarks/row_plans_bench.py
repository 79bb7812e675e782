"""Benchmark: a mixed batch (3 prompt groups, 3 strengths, each row its own plan) vs a uniform
batch of the same size (one plan), through the engine.

    python benchmarks/row_plans_bench.py [--repeats 7] [--batch 24] [--new-tokens 16]

On a GPT-2-small-size model with random weights (12 layers, width 768), a vector added at layers
4 and 8 on every token: (a) every row at strength 3 (uniform: the plan runs as is) and (b) rows
in three groups at strengths 1, 3 and 5 (merged into one op per layer with a strength per row,
execute/rows.py), one trace (next-token logits) and one greedy generation per measurement,
alternating (a) and (b). Prints the median time of each and the median of the pairwise ratios
(b)/(a); the target is <= 1.1. Also checks the mixed rows of strength 3 equal the uniform rows.
Nothing is asserted: machines here are noisy; read the ratio.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from recipe_engine.api import Row, run_rows
from recipe_engine.format.positions import parse_positions
from recipe_engine.format.run_spec import GenerationSpec
from recipe_engine.plan import Plan, PlanOp
from recipe_engine.resolve.builtin_build import byte_tokenizer
from recipe_engine.resolve.model_loader import wrap_model

PROMPTS = [
    "The weather today is",
    "I think the movie was quite",
    "My trip to the city was",
    "The new phone is",
    "Yesterday the meeting about the budget",
    "Our neighbours said that the",
    "In the morning we",
    "She told me the story about",
]


def _plan(vector: torch.Tensor, strength: float) -> Plan:
    ops = [
        PlanOp(
            index=0,
            label="add v",
            op="add",
            layer=layer,
            site="resid_post",
            path=f"transformer.h.{layer}",
            port="output",
            positions=parse_positions("all"),
            strength=strength,
            vector_name="v",
            vector=vector,
        )
        for layer in (4, 8)
    ]
    return Plan([dataclasses.replace(op, order=(i, 0)) for i, op in enumerate(ops)])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--new-tokens", type=int, default=16)
    args = parser.parse_args()
    torch.manual_seed(0)
    config = GPT2Config(n_layer=12, n_embd=768, n_head=12, vocab_size=50257, n_positions=1024)
    model = wrap_model(GPT2LMHeadModel(config).eval(), byte_tokenizer(), identity="bench")
    vector = torch.randn(768) * 0.2
    prompts = (PROMPTS * args.batch)[: args.batch]
    uniform = _plan(vector, 3.0)
    by_group = [_plan(vector, 1.0), uniform, _plan(vector, 5.0)]
    third = (args.batch + 2) // 3
    mixed_rows = [Row(p, by_group[i // third]) for i, p in enumerate(prompts)]
    uniform_rows = [Row(p, uniform) for p in prompts]
    gen = GenerationSpec(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens)

    def measure(rows: list[Row]) -> tuple[float, list[torch.Tensor]]:
        start = time.perf_counter()
        traced = run_rows(model, rows)
        run_rows(model, rows, mode="generate", generation=gen)
        return time.perf_counter() - start, [r.next_logits for r in traced]

    measure(uniform_rows)  # warm up
    times: dict[str, list[float]] = {"uniform": [], "mixed": []}
    ratios: list[float] = []
    for _ in range(args.repeats):
        t_uniform, uniform_logits = measure(uniform_rows)
        t_mixed, mixed_logits = measure(mixed_rows)
        times["uniform"].append(t_uniform)
        times["mixed"].append(t_mixed)
        ratios.append(t_mixed / t_uniform)
    same = all(
        torch.equal(mixed_logits[i], uniform_logits[i])
        for i in range(len(prompts))
        if mixed_rows[i].plan is uniform
    )
    print(
        f"batch {args.batch}, trace + greedy {args.new_tokens} tokens, {args.repeats} pairs, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"uniform batch (one plan)      median {statistics.median(times['uniform']):.3f} s")
    print(f"mixed batch (3 strengths)     median {statistics.median(times['mixed']):.3f} s")
    print(f"mixed / uniform (median of pairs): {statistics.median(ratios):.3f}x (target <= 1.1)")
    print(f"strength-3 rows identical in both batches: {same}")


if __name__ == "__main__":
    main()
