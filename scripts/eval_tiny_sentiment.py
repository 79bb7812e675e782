"""Measure `tiny-sentiment` through the engine: does steering demonstrably work?

    .venv/bin/python scripts/eval_tiny_sentiment.py [--model DIR] [--json OUT]

Loads the folder with `from_pretrained`, wraps it for the engine (`wrap_model`), builds every
vector with the engine (`build_vectors`, no cache) from the contrastive prompt lists in
`recipe_engine.training.prompts`, compiles plans (`compile_plan`) and runs them (`trace_pass`,
`generate_pass`). Every setting (layer, strength, the ablated carrier) is chosen on the tuning
lists (`TUNE_*`), and every number is measured on held-out prompts that built no vector and
chose no setting (the lists are disjoint: tests/test_data_splits.py). `--smoke` (CI,
tests/test_eval_script.py) runs layers 0-1 and two strengths only.

Targets (exit status 1 if one is missed):
  sentiment  add at the chosen layer/strength: P(positive words) +0.4 or more; the negated
             vector: P(negative words) +0.4 or more (and P(positive) falls); a random vector of
             the same norm: |dP(positive)| < 0.05 (seed 0, as a recipe writes it, and the mean
             over 8 seeds); KL(steered || baseline) on neutral text under KL_BOUND
  ablation   mean ablation of the site carrying the concept costs less KL than zero ablation
             of it and removes most (> 50%) of the concept's effect in context; project_out of
             the concept direction removes most of the add's effect
  topic      a food-vs-tech vector moves P(food nouns) by +0.4 or more, and still does after
             orthogonalization against the sentiment vector
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from recipe_engine.compiler import compile_plan
from recipe_engine.execute.runner import generate_pass, trace_pass
from recipe_engine.execute.steer import apply_plan
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.run_spec import GenerationSpec
from recipe_engine.plan import Plan
from recipe_engine.report.metrics import kl_divergence, token_ids, token_mass
from recipe_engine.resolve.model_loader import LoadedModel, wrap_model
from recipe_engine.training import prompts as P
from recipe_engine.vectors import build_vectors

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = ROOT / "recipe_engine" / "builtin_weights" / "tiny-sentiment"
STRENGTHS = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0]
KL_BOUND = 0.3  # nats per position, mean over every position of the neutral passages
TARGET = 0.4  # absolute change in probability mass the steering targets ask for
GOAL = 0.6  # what the chosen default strength aims for, a margin above TARGET
RANDOM_SEEDS = range(8)
BATCH = 16


def _recipe(vectors: dict[str, Any], interventions: list[dict[str, Any]]) -> Recipe:
    return Recipe.model_validate(
        {
            "version": 1,
            "name": "eval-tiny-sentiment",
            "model": {"id": "builtin:tiny-sentiment"},
            "vectors": vectors,
            "interventions": interventions,
            "run": {"mode": "trace", "prompts": ["x"], "batch_size": BATCH},
        }
    )


def add(vector: str, layer: int, strength: float) -> dict[str, Any]:
    return {
        "vector": vector,
        "op": "add",
        "layers": layer,
        "site": "resid_post",
        "positions": "all",
        "strength": strength,
    }


def project_out(vector: str, layers: Any) -> dict[str, Any]:
    return {"vector": vector, "op": "project_out", "layers": layers, "site": "resid_post"}


class Bench:
    """Vectors built by the engine, plans compiled by it, passes run by it."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.vectors: dict[str, torch.Tensor] = {}
        tok = model.tokenizer
        self.ids = {
            "positive": token_ids(tok, P.POSITIVE_WORDS),
            "negative": token_ids(tok, P.NEGATIVE_WORDS),
            "food": token_ids(tok, P.FOOD_NOUNS),
            "tech": token_ids(tok, P.TECH_NOUNS),
        }
        self._clean: dict[str, list[torch.Tensor]] = {}

    def build(self, specs: dict[str, Any], names: list[str] | None = None) -> None:
        recipe = _recipe(specs, [])
        built = build_vectors(recipe, self.model, None, names=names or list(specs), cache=False)
        self.vectors.update({name: b.tensor for name, b in built.items()})

    def plan(self, interventions: list[dict[str, Any]]) -> Plan:
        names = {i["vector"] for i in interventions if i.get("vector")}
        # compile_plan takes the built tensors; the specs only have to name the vectors
        specs = {n: {"kind": "random", "seed": 0, "norm": 1.0} for n in names}
        return compile_plan(
            _recipe(specs, interventions), self.model, {n: self.vectors[n] for n in names}
        )

    def mass(self, plan: Plan, prompts: Sequence[str], words: str) -> float:
        logits = trace_pass(self.model, plan, prompts, BATCH).next_logits
        return float(token_mass(logits, self.ids[words]).mean())

    def _all_positions(self, plan: Plan, texts: Sequence[str]) -> list[torch.Tensor]:
        rows: list[torch.Tensor] = []
        with self.model.lock, torch.inference_mode():
            for text in texts:  # one text per pass: no padding to mask
                with self.model.nn.trace(text):
                    apply_plan(self.model.nn, plan)
                    out = self.model.nn.output.logits.save()
                rows.append(out[0].float().cpu())
        return rows

    def kl(self, plan: Plan, texts: Sequence[str]) -> float:
        """Mean KL(plan || clean) over every position of `texts`."""
        key = "\n".join(texts)
        if key not in self._clean:
            self._clean[key] = self._all_positions(Plan(), texts)
        steered = self._all_positions(plan, texts)
        per_position = torch.cat(
            [kl_divergence(s, c) for s, c in zip(steered, self._clean[key], strict=True)]
        )
        return float(per_position.mean())

    def gap(self, plan: Plan, pos: Sequence[str], neg: Sequence[str], words: str) -> float:
        return self.mass(plan, pos, words) - self.mass(plan, neg, words)


def _fmt(x: float) -> str:
    return f"{x:+.3f}"


def steering_grid(
    bench: Bench,
    prefix: str,
    layers: list[int],
    prompts: list[str],
    up: str,
    down: str,
    strengths: Sequence[float] = STRENGTHS,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Add +s*v and -s*v at each layer; P(up) with +v, P(down) with -v; random controls."""
    empty = Plan()
    base = {up: bench.mass(empty, prompts, up), down: bench.mass(empty, prompts, down)}
    rows: list[dict[str, Any]] = []
    print(
        f"{'layer':>5} {'|v|':>6} {'s':>3} | {'P(' + up + ')+':>12} {'d':>6} | "
        f"{'P(' + down + ')-':>12} {'d':>6} {'dP(' + up + ')-':>10} | {'KL+':>5} {'KL-':>5} | "
        f"{'rand seed0':>10} {'mean':>5} {'max':>5}"
    )
    for layer in layers:
        name = f"{prefix}{layer}"
        norm = float(bench.vectors[name].norm())
        bench.build(
            {f"rand{seed}": {"kind": "random", "seed": seed, "norm": norm} for seed in RANDOM_SEEDS}
        )
        for s in strengths:
            plus, minus = bench.plan([add(name, layer, s)]), bench.plan([add(name, layer, -s)])
            rand = [
                abs(bench.mass(bench.plan([add(f"rand{seed}", layer, s)]), prompts, up) - base[up])
                for seed in RANDOM_SEEDS
            ]
            r = {
                "layer": layer,
                "norm": norm,
                "strength": s,
                "up_plus": bench.mass(plus, prompts, up),
                "down_minus": bench.mass(minus, prompts, down),
                "up_minus": bench.mass(minus, prompts, up),
                "kl_plus": bench.kl(plus, P.NEUTRAL_PASSAGES),
                "kl_minus": bench.kl(minus, P.NEUTRAL_PASSAGES),
                "rand_seed0": rand[0],
                "rand_mean": sum(rand) / len(rand),
                "rand_max": max(rand),
            }
            r["d_up"] = r["up_plus"] - base[up]
            r["d_down"] = r["down_minus"] - base[down]
            r["d_up_minus"] = r["up_minus"] - base[up]
            rows.append(r)
            print(
                f"{layer:>5} {norm:>6.1f} {s:>3g} | {r['up_plus']:>12.3f} {_fmt(r['d_up'])} | "
                f"{r['down_minus']:>12.3f} {_fmt(r['d_down'])} {_fmt(r['d_up_minus']):>10} | "
                f"{r['kl_plus']:>5.3f} {r['kl_minus']:>5.3f} | {r['rand_seed0']:>10.3f} "
                f"{r['rand_mean']:>5.3f} {r['rand_max']:>5.3f}"
            )
    return rows, base


def choose(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The least norm added that moves the mass by GOAL or more both ways (+v and -v), within
    the KL bound, with random controls under 0.05 (seed 0 and the mean over seeds); failing
    that, the strongest setting within those bounds; failing that, the strongest overall."""

    def score(r: dict[str, Any]) -> float:
        return float(min(r["d_up"], r["d_down"]))

    ok = [
        r
        for r in rows
        if max(r["kl_plus"], r["kl_minus"]) <= KL_BOUND
        and r["rand_seed0"] < 0.05
        and r["rand_mean"] < 0.05
    ]
    enough = [r for r in ok if score(r) >= GOAL]
    if enough:
        return min(enough, key=lambda r: (abs(r["strength"]) * r["norm"], -score(r)))
    return max(ok or rows, key=score)


def ablation_table(
    bench: Bench,
    layers: list[int],
    n_heads: int,
    concepts: dict[str, tuple[list[str], list[str], str]],
    only: set[str] | None = None,
) -> list[dict[str, Any]]:
    """Mean vs zero ablation of every attn_out, mlp_out and single head: how much of each
    concept's in-context effect is left, and the KL it costs on held-out text."""
    empty = Plan()
    base = {c: bench.gap(empty, *spec) for c, spec in concepts.items()}
    sites: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    for layer in layers:
        for site in ("attn_out", "mlp_out"):
            where = {"layers": layer, "site": site}
            sites.append(
                (
                    f"{site}[{layer}]",
                    {"op": "mean_ablate", "vector": f"mean_{site}{layer}", **where},
                    {"op": "zero", **where},
                )
            )
        for head in range(n_heads):
            where = {"layers": layer, "site": "heads", "heads": [head]}
            sites.append(
                (
                    f"head {layer}.{head}",
                    {"op": "mean_ablate", "vector": f"mean_heads{layer}", **where},
                    {"op": "zero", **where},
                )
            )
    if only is not None:
        sites = [site for site in sites if site[0] in only]
    header = " ".join(f"{c + ' left':>14}" for c in concepts)
    print(f"{'site':>12} {'op':>5} | {header} | {'KL text':>7} {'KL neutral':>10}")
    rows: list[dict[str, Any]] = []
    for label, mean_op, zero_op in sites:
        row: dict[str, Any] = {"site": label}
        for op_name, op in (("mean", mean_op), ("zero", zero_op)):
            plan = bench.plan([op])
            for concept, spec in concepts.items():
                row[f"{op_name}_{concept}_removed"] = 1 - bench.gap(plan, *spec) / base[concept]
            row[f"{op_name}_kl"] = bench.kl(plan, P.HELDOUT_TEXT)
            row[f"{op_name}_kl_neutral"] = bench.kl(plan, P.NEUTRAL_PASSAGES)
            left = " ".join(f"{1 - row[f'{op_name}_{c}_removed']:>14.0%}" for c in concepts)
            print(
                f"{label:>12} {op_name:>5} | {left} | {row[f'{op_name}_kl']:>7.3f} "
                f"{row[f'{op_name}_kl_neutral']:>10.3f}"
            )
        rows.append(row)
    return rows


def carrier(rows: list[dict[str, Any]], concept: str) -> dict[str, Any]:
    """The site carrying a concept: of the sites whose mean ablation removes at least 80% as
    much of it as the best one, the cheapest in KL (so one head beats its whole layer)."""
    best = max(r[f"mean_{concept}_removed"] for r in rows)
    close = [r for r in rows if r[f"mean_{concept}_removed"] >= 0.8 * best]
    return min(close, key=lambda r: r["mean_kl"])


def _vector_specs(layers: list[int], position: str) -> dict[str, Any]:
    """Every vector, at every layer, built by the engine."""
    specs: dict[str, Any] = {}
    for layer in layers:
        contrast = {"layer": layer, "site": "resid_post", "position": position}
        specs[f"sent{layer}"] = {
            "kind": "contrastive",
            "positive": P.POSITIVE_PROMPTS,
            "negative": P.NEGATIVE_PROMPTS,
            "method": "mean_diff",
            **contrast,
        }
        specs[f"topic{layer}"] = {
            "kind": "contrastive",
            "positive": P.FOOD_PROMPTS,
            "negative": P.TECH_PROMPTS,
            "method": "mean_diff",
            **contrast,
        }
        specs[f"topic_orth{layer}"] = {
            "kind": "expr",
            "expr": f"topic{layer}",
            "orthogonalize_against": [f"sent{layer}"],
        }
        for site in ("attn_out", "mlp_out", "heads"):
            specs[f"mean_{site}{layer}"] = {
                "kind": "mean_activation",
                "prompts": P.CALIBRATION,
                "layer": layer,
                "site": site,
                "position": "mean",
            }
    return specs


def _load(args: argparse.Namespace) -> tuple[Bench, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(args.model)
    model = wrap_model(hf, tok, identity=f"eval:{args.model}")
    bench = Bench(model)
    print(
        f"model {args.model}: {model.shape.n_layers} layers, width {model.shape.hidden_size}, "
        f"{model.shape.n_heads} heads, vocab {len(tok)}"
    )
    for words in ("positive", "negative"):
        listed = getattr(P, f"{words.upper()}_WORDS")
        print(f"{words} words {listed} -> token ids {bench.ids[words]}")
    return bench, tok


def _sentiment(bench: Bench, layers: list[int], position: str, r: dict[str, Any]) -> None:
    heldout = r["heldout"] = P.HELDOUT_NEUTRAL
    print(
        f"\nSENTIMENT: mean_diff vector (resid_post, position {position}) added at all "
        f"positions; chosen on {len(P.TUNE_NEUTRAL)} tuning prompts, measured on "
        f"{len(heldout)} held-out neutral prompts; random = same norm, "
        f"{len(RANDOM_SEEDS)} seeds, |dP(positive)|"
    )
    strengths = r["strengths"]
    grid, _ = steering_grid(
        bench, "sent", layers, P.TUNE_NEUTRAL, "positive", "negative", strengths
    )
    chosen = choose(grid)
    r["L"], r["S"] = chosen["layer"], chosen["strength"]
    r["vec"] = f"sent{r['L']}"
    print(f"chosen on the tuning prompts: layer {r['L']}, strength {r['S']:g}; held-out:")
    test, r["base"] = steering_grid(
        bench, "sent", [r["L"]], heldout, "positive", "negative", [r["S"]]
    )
    r["best"] = test[0]
    r["out"]["sentiment_grid"] = grid


def _topic(bench: Bench, layers: list[int], r: dict[str, Any]) -> None:
    topic_held = r["topic_held"] = P.HELDOUT_TOPIC
    base, heldout = r["base"], r["heldout"]
    print(
        f"\nTOPIC: food-minus-tech vector, chosen on {len(P.TUNE_TOPIC)} tuning prompts, "
        f"measured on {len(topic_held)} held-out topic-free prompts"
    )
    strengths = r["strengths"]
    tgrid, _ = steering_grid(bench, "topic", layers, P.TUNE_TOPIC, "food", "tech", strengths)
    chosen = choose(tgrid)
    TL, TS = r["TL"], r["TS"] = chosen["layer"], chosen["strength"]
    tvec = r["tvec"] = f"topic{TL}"
    print(f"chosen on the tuning prompts: layer {TL}, strength {TS:g}; held-out:")
    test, tbase = steering_grid(bench, "topic", [TL], topic_held, "food", "tech", [TS])
    r["tbase"], tbest = tbase, test[0]
    r["tbest"] = tbest
    r["out"]["topic_grid"] = tgrid
    t, sv = bench.vectors[tvec], bench.vectors[f"sent{TL}"]
    r["cos"] = float(t @ sv / (t.norm() * sv.norm()))
    orth_plan = r["orth_plan"] = bench.plan([add(f"topic_orth{TL}", TL, TS)])
    r["orth_food"] = bench.mass(orth_plan, topic_held, "food") - tbase["food"]
    topic_plan = bench.plan([add(tvec, TL, TS)])
    r["cross"] = bench.mass(topic_plan, heldout, "positive") - base["positive"]
    r["orth_cross"] = bench.mass(orth_plan, heldout, "positive") - base["positive"]


def _ablation(bench: Bench, layers: list[int], n_heads: int, r: dict[str, Any]) -> None:
    """Where the concepts live, and what directional ablation removes."""
    concepts = {
        "sentiment": (P.CONTEXT_POSITIVE, P.CONTEXT_NEGATIVE, "positive"),
        "topic": (P.CONTEXT_FOOD, P.CONTEXT_TECH, "food"),
    }
    empty = Plan()
    gaps = {c: bench.gap(empty, *spec) for c, spec in concepts.items()}
    print(
        "\nABLATION: each concept's effect in held-out contexts: P(positive | positive "
        f"context) - P(positive | negative context) = {gaps['sentiment']:.3f}; P(food | food "
        f"context) - P(food | tech context) = {gaps['topic']:.3f}. Mean (calibration set) vs "
        "zero ablation at all positions; KL on held-out text and on neutral passages"
    )
    tuning = {
        "sentiment": (P.TUNE_CONTEXT_POSITIVE, P.TUNE_CONTEXT_NEGATIVE, "positive"),
        "topic": (P.TUNE_CONTEXT_FOOD, P.TUNE_CONTEXT_TECH, "food"),
    }
    print("carriers chosen on the tuning contexts:")
    ablations = ablation_table(bench, layers, n_heads, tuning)
    r["out"]["ablations"] = ablations
    chosen = {carrier(ablations, "sentiment")["site"], carrier(ablations, "topic")["site"]}
    print("the chosen carriers, measured on the held-out contexts:")
    test = {row["site"]: row for row in ablation_table(bench, layers, n_heads, concepts, chosen)}
    r["s_site"] = test[carrier(ablations, "sentiment")["site"]]
    r["t_site"] = test[carrier(ablations, "topic")["site"]]
    vec, tvec, L, S = r["vec"], r["tvec"], r["L"], r["S"]
    base, heldout = r["base"], r["heldout"]
    # directional ablation: the concept direction projected out of every layer, in context
    proj = bench.plan([project_out(vec, "all")])
    r["proj_removed"] = 1 - bench.gap(proj, *concepts["sentiment"]) / gaps["sentiment"]
    r["proj_kl"] = bench.kl(proj, P.HELDOUT_TEXT)
    tproj = bench.plan([project_out(tvec, "all")])
    r["tproj_removed"] = 1 - bench.gap(tproj, *concepts["topic"]) / gaps["topic"]
    # project_out after the add: at the same site (ops compose in order), and at later layers
    same = bench.plan([add(vec, L, S), project_out(vec, L)])
    r["same_d"] = bench.mass(same, heldout, "positive") - base["positive"]
    later_layers = r["later_layers"] = [la for la in layers if la > L]
    r["later_d"] = None
    if later_layers:
        later = bench.plan([add(vec, L, S), project_out(vec, later_layers)])
        r["later_d"] = bench.mass(later, heldout, "positive") - base["positive"]


def _samples(bench: Bench, tok: Any, r: dict[str, Any]) -> None:
    """Greedy continuations, steered on every step."""
    model, empty = bench.model, Plan()
    vec, L, S, TL, TS = r["vec"], r["L"], r["S"], r["TL"], r["TS"]
    topic_held = r["topic_held"]
    gen = GenerationSpec(max_new_tokens=12, do_sample=False)
    samples = r["heldout"][:4]
    runs = {
        "baseline": generate_pass(model, empty, samples, gen, BATCH),
        "+sentiment": generate_pass(model, bench.plan([add(vec, L, S)]), samples, gen, BATCH),
        "-sentiment": generate_pass(model, bench.plan([add(vec, L, -S)]), samples, gen, BATCH),
    }
    truns = {
        "baseline": generate_pass(model, empty, topic_held[:3], gen, BATCH),
        "+food": generate_pass(model, r["orth_plan"], topic_held[:3], gen, BATCH),
        "-food": generate_pass(
            model, bench.plan([add(f"topic_orth{TL}", TL, -TS)]), topic_held[:3], gen, BATCH
        ),
    }
    print("\nGREEDY CONTINUATIONS (generate mode, steered on every step)")
    for group, prompts in ((runs, samples), (truns, topic_held[:3])):
        for i, prompt in enumerate(prompts):
            print(f"  {prompt!r}")
            for tag, res in group.items():
                print(f"    {tag:>11}: {tok.decode(res.generated[i])!r}")


def _sentiment_checks(r: dict[str, Any]) -> list[tuple[str, bool, str]]:
    checks: list[tuple[str, bool, str]] = []

    def check(name: str, ok: bool, value: str) -> None:
        checks.append((name, ok, value))

    best, base, L = r["best"], r["base"], r["L"]
    bp, bn = base["positive"], base["negative"]
    check(
        f"+v: dP(positive) >= +{TARGET}",
        best["d_up"] >= TARGET,
        f"{bp:.3f} -> {best['up_plus']:.3f} ({_fmt(best['d_up'])})",
    )
    check(
        f"-v: dP(negative) >= +{TARGET}",
        best["d_down"] >= TARGET,
        f"{bn:.3f} -> {best['down_minus']:.3f} ({_fmt(best['d_down'])})",
    )
    check(
        "-v: dP(positive) < 0 (all the baseline allows)",
        best["d_up_minus"] < 0,
        f"{bp:.3f} -> {best['up_minus']:.3f} ({_fmt(best['d_up_minus'])})",
    )
    check(
        "random, same norm: |dP(positive)| < 0.05",
        best["rand_seed0"] < 0.05 and best["rand_mean"] < 0.05,
        f"seed 0 {best['rand_seed0']:.3f}; mean {best['rand_mean']:.3f}, max "
        f"{best['rand_max']:.3f} over {len(RANDOM_SEEDS)} seeds",
    )
    check(
        f"KL(steered || base), neutral text <= {KL_BOUND}",
        max(best["kl_plus"], best["kl_minus"]) <= KL_BOUND,
        f"+v {best['kl_plus']:.3f}, -v {best['kl_minus']:.3f} nats/position",
    )
    for concept, site in (("sentiment", r["s_site"]), ("topic", r["t_site"])):
        check(
            f"{concept} carrier {site['site']}: mean-ablation KL < zero",
            site["mean_kl"] < site["zero_kl"],
            f"{site['mean_kl']:.3f} vs {site['zero_kl']:.3f} nats/position on held-out text "
            f"({site['mean_kl'] / site['zero_kl'] - 1:+.0%}); neutral text "
            f"{site['mean_kl_neutral']:.3f} vs {site['zero_kl_neutral']:.3f}",
        )
        check(
            f"{concept} carrier {site['site']}: mean ablation removes > 50%",
            site[f"mean_{concept}_removed"] > 0.5,
            f"{site[f'mean_{concept}_removed']:.0%} of the effect (zero ablation "
            f"{site[f'zero_{concept}_removed']:.0%})",
        )
    check(
        f"project_out sentiment (layer {L} vector), all layers: removes > 50%",
        r["proj_removed"] > 0.5,
        f"{r['proj_removed']:.0%} of the in-context effect; KL {r['proj_kl']:.3f}",
    )
    steer_d = best["d_up"]
    check(
        f"add, then project_out at layer {L}: removes > 50% of the add",
        abs(r["same_d"]) < 0.5 * steer_d,
        f"dP(positive) {_fmt(steer_d)} -> {_fmt(r['same_d'])}",
    )
    if r["later_d"] is not None:
        check(
            f"add at {L}, project_out at layers {r['later_layers']}: removes > 50%",
            abs(r["later_d"]) < 0.5 * steer_d,
            f"dP(positive) {_fmt(steer_d)} -> {_fmt(r['later_d'])}",
        )
    return checks


def _topic_checks(r: dict[str, Any]) -> list[tuple[str, bool, str]]:
    tbest, tbase = r["tbest"], r["tbase"]
    return [
        (
            f"topic +v: dP(food) >= +{TARGET}",
            tbest["d_up"] >= TARGET,
            f"{tbase['food']:.3f} -> {tbest['up_plus']:.3f} ({_fmt(tbest['d_up'])})",
        ),
        (
            f"topic -v: dP(tech) >= +{TARGET}",
            tbest["d_down"] >= TARGET,
            f"{tbase['tech']:.3f} -> {tbest['down_minus']:.3f} ({_fmt(tbest['d_down'])})",
        ),
        (
            f"topic orthogonalized vs sentiment: dP(food) >= +{TARGET}",
            r["orth_food"] >= TARGET,
            f"{_fmt(r['orth_food'])} (cos(topic, sentiment) {r['cos']:+.3f}); its dP(positive) "
            f"{_fmt(r['orth_cross'])} (raw {_fmt(r['cross'])})",
        ),
        (
            "topic random, same norm: |dP(food)| < 0.05",
            tbest["rand_seed0"] < 0.05 and tbest["rand_mean"] < 0.05,
            f"seed 0 {tbest['rand_seed0']:.3f}; mean {tbest['rand_mean']:.3f}, max "
            f"{tbest['rand_max']:.3f}",
        ),
        (
            f"topic KL, neutral text <= {KL_BOUND}",
            max(tbest["kl_plus"], tbest["kl_minus"]) <= KL_BOUND,
            f"+v {tbest['kl_plus']:.3f}, -v {tbest['kl_minus']:.3f}",
        ),
        (
            f"project_out topic (layer {r['TL']} vector), all layers: removes > 50%",
            r["tproj_removed"] > 0.5,
            f"{r['tproj_removed']:.0%} of the in-context effect",
        ),
    ]


def _results(r: dict[str, Any], checks: list[tuple[str, bool, str]]) -> int:
    """Print the table of targets; the number met."""
    best, tbest = r["best"], r["tbest"]
    L, S, TL, TS = r["L"], r["S"], r["TL"], r["TS"]
    print(
        f"\nRESULTS  sentiment: layer {L}, strength {S:g}, site resid_post, positions all "
        f"(|v| {best['norm']:.2f}); topic: layer {TL}, strength {TS:g} (|v| {tbest['norm']:.2f})"
    )
    width = max(len(c[0]) for c in checks)
    for name, ok, value in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {name:<{width}}  {value}")
    r["out"]["choice"] = {
        "sentiment": {"layer": L, "strength": S, "norm": best["norm"], "site": "resid_post"},
        "topic": {"layer": TL, "strength": TS, "norm": tbest["norm"], "site": "resid_post"},
        "sentiment_carrier": r["s_site"]["site"],
        "topic_carrier": r["t_site"]["site"],
    }
    r["out"]["checks"] = [{"name": n, "pass": ok, "value": v} for n, ok, v in checks]
    return sum(ok for _, ok, _ in checks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_DIR)
    parser.add_argument(
        "--position", default="mean", help="where contrastive vectors read activations"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument(
        "--smoke", action="store_true", help="layers 0-1 and two strengths only (CI smoke test)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    bench, tok = _load(args)
    shape = bench.model.shape
    layers = list(range(min(2, shape.n_layers) if args.smoke else shape.n_layers))
    bench.build(_vector_specs(layers, args.position))
    # What each section measured, by name, for the sections after it and the checks.
    r: dict[str, Any] = {
        "out": {
            "model": str(args.model),
            "layers": shape.n_layers,
            "hidden_size": shape.hidden_size,
            "vector_position": args.position,
        },
        "strengths": [1.0, 3.0] if args.smoke else STRENGTHS,
    }
    _sentiment(bench, layers, args.position, r)
    _topic(bench, layers, r)
    _ablation(bench, layers, shape.n_heads, r)
    _samples(bench, tok, r)
    checks = _sentiment_checks(r) + _topic_checks(r)
    passed = _results(r, checks)
    print(f"\n{passed}/{len(checks)} targets met in {time.perf_counter() - start:.0f}s")
    if args.json:
        args.json.write_text(json.dumps(r["out"], indent=2) + "\n", encoding="utf-8")
    return 0 if passed == len(checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
