"""A `when:` condition on a real model: "the prompt is about food", found by `steer condition`
and measured on held-out prompts (precision, recall, F1), then applied.

    python scripts/condition_real_model.py MODEL [--holdout 0.5] [--layers 0:30] [--out DIR]

MODEL: a local transformers folder (e.g. SmolLM2-135M-Instruct as converted in
docs/REAL_MODELS or the issue's setup). The condition vector is a contrastive mean difference of
8 food vs 8 other sentences (scripts/data/food-vector.txt, other-vector.txt), read at each
candidate layer; the labelled prompts (scripts/data/food-vs-other.jsonl: 40 food, 40 other,
none of them used for the vector) are split, seeded and stratified, into tuning and held-out
prompts. Prints the search table and the held-out precision/recall/F1 of the chosen condition,
then runs the recipe with the found condition on the held-out prompts (trace mode) and counts
the rows it steered.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from recipe_engine.api import find_condition, load_recipe, run_recipe, write_condition_search

DATA = Path(__file__).resolve().parent / "data"

RECIPE = """\
version: 1
name: real-model-condition
model: {{id: {model}, dtype: float32}}
vectors:
  food:
    kind: contrastive
    positive: {{file: food-vector.txt}}
    negative: {{file: other-vector.txt}}
    layer: {layer}
    position: mean
interventions:
  - vector: food
    op: add
    layers: {target}
    strength: 4.0
    normalize: true
    when:
      vector: food
      layer: {layer}
      aggregate: mean
      compare: {compare}
      threshold: {threshold}
run:
  mode: trace
  prompts: {{file: heldout.txt}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", help="a local transformers model folder")
    parser.add_argument("--holdout", type=float, default=0.5)
    parser.add_argument("--layers", nargs="+", default=["all"])
    parser.add_argument("--out", default="steer-out/condition-real-model")
    args = parser.parse_args()
    model = Path(args.model).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / ".git").mkdir()
        for name in ("food-vector.txt", "other-vector.txt", "food-vs-other.jsonl"):
            shutil.copy(DATA / name, root / name)
        recipe = root / "recipe.yaml"
        fill = {"model": model, "layer": 0, "target": 0, "compare": "above", "threshold": 0}
        recipe.write_text(RECIPE.format(**fill))
        (root / "heldout.txt").write_text("placeholder\n")
        result = find_condition(
            recipe,
            root / "food-vs-other.jsonl",
            heldout=args.holdout,
            layers=args.layers,
            allow_outside_root=True,
        )
        write_condition_search(result, Path(args.out))
        print(f"{'layer':>5} {'compare':>7} {'threshold':>9} {'P':>6} {'R':>6} {'F1':>6}  (tuning)")
        for layer in sorted({c.layer for c in result.cells}):
            top = max((c for c in result.cells if c.layer == layer), key=lambda c: c.f1)
            print(
                f"{layer:>5} {top.compare:>7} {top.threshold:>9g} {top.precision:>6.3f} "
                f"{top.recall:>6.3f} {top.f1:>6.3f}"
            )
        best, held = result.best, result.heldout_result
        print(f"chosen: {result.snippet()}")
        print(
            f"held-out ({result.heldout} prompts): precision {held.precision:.3f}, "
            f"recall {held.recall:.3f}, F1 {held.f1:.3f}; tuning F1 {best.f1:.3f} "
            f"({result.tuning} prompts)"
        )
        # Apply it: the held-out prompts through the recipe with the found condition.
        rows = [
            json.loads(line)
            for line in (root / "food-vs-other.jsonl").read_text().split("\n")
            if line
        ]
        from recipe_engine.sweep.condition import split

        _, hold = split([r["label"] for r in rows], args.holdout, 0)
        (root / "heldout.txt").write_text("\n".join(rows[i]["text"] for i in hold) + "\n")
        fill.update(
            layer=best.layer, target=best.layer, compare=best.compare, threshold=best.threshold
        )
        recipe.write_text(RECIPE.format(**fill))
        report = run_recipe(load_recipe(recipe, allow_outside_root=True))
        fired = [p.conditions[0].fired for p in report.prompts]
        labels = [rows[i]["label"] for i in hold]
        steered_food = sum(f and y for f, y in zip(fired, labels, strict=True))
        steered_other = sum(f and not y for f, y in zip(fired, labels, strict=True))
        print(
            f"run with the condition: steered {steered_food}/{sum(labels)} food prompts and "
            f"{steered_other}/{len(labels) - sum(labels)} others"
        )
        print(f"wrote {args.out}/condition.{{csv,json,png}}")


if __name__ == "__main__":
    main()
