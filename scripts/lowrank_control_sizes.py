"""How far a low-rank intervention and its random controls move the activations they edit: the
mean edit norm mean_t ||R^T(W h_t + b - R h_t)|| over every prompt token h_t of a recipe's run
prompts, read unsteered by a plain PyTorch forward hook at the intervention's site, for the
method, for its controls (evaluate/controls.py: matched on these activations) and for the same
control directions sized by the parameter norms alone (||W - R||_F, ||b||), the rule the
controls do not use (README, Trained low-rank interventions).

    python scripts/lowrank_control_sizes.py recipes/trained-lowrank.yaml --controls 4

Handles a recipe whose first intervention is op lowrank with one layer at mlp_out (the gallery's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from recipe_engine.evaluate.controls import control_tensors, lowrank_inputs  # noqa: E402
from recipe_engine.pipeline import compile_recipe, load_recipe  # noqa: E402
from recipe_engine.vectors.lowrank import pack_lowrank, unpack_lowrank  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe")
    parser.add_argument("--controls", type=int, default=4)
    args = parser.parse_args()
    compiled = compile_recipe(load_recipe(args.recipe))
    model, recipe = compiled.model, compiled.recipe
    item = recipe.interventions[0]
    assert item.op == "lowrank" and item.site == "mlp_out" and item.vector is not None
    layer = int(item.layers) if isinstance(item.layers, int) else int(next(iter(item.layers)))
    method = compiled.vectors[item.vector].tensor.float()
    prompts = list(dict.fromkeys(compiled_prompts(compiled)))
    seen: list[torch.Tensor] = []
    mlp = model.hf.transformer.h[layer].mlp
    handle = mlp.register_forward_hook(lambda _m, _i, out: seen.append(out[0].detach().float()))
    try:
        with torch.no_grad():
            for prompt in prompts:
                model.hf(**model.tokenizer(prompt, return_tensors="pt"))
    finally:
        handle.remove()
    h = torch.cat(seen)

    def edit(packed: torch.Tensor) -> float:
        r, w, b = unpack_lowrank(packed)
        return float(((h @ w.T + b - h @ r.T) @ r).norm(dim=-1).mean())

    rotation, weight, _ = unpack_lowrank(method)
    inputs = lowrank_inputs(recipe, model, prompts)
    print(f"{len(prompts)} prompts, {len(h)} tokens; method mean edit norm {edit(method):.2f}")
    for seed in range(args.controls):
        control = control_tensors(recipe, {item.vector: method}, seed, inputs)[item.vector]
        r, w, b = unpack_lowrank(control)
        scale = float((weight - rotation).norm() / (w - r).norm())
        by_parameters = pack_lowrank(r, r + (w - r) * scale, b * scale)
        print(
            f"control {seed}: matched {edit(control):.2f}, "
            f"parameter norms alone {edit(by_parameters):.2f}"
        )
    return 0


def compiled_prompts(compiled: object) -> list[str]:
    """The run prompts as the run renders them (plain text for the embedded model)."""
    from recipe_engine.format.prompt_groups import prompt_parts
    from recipe_engine.vectors.sources import PromptSourceRef

    loaded = compiled.loaded  # type: ignore[attr-defined]
    doc, recipe = loaded.document, loaded.recipe
    out: list[str] = []
    for part in prompt_parts(recipe.run.prompts):
        ref = PromptSourceRef(part.source, doc, part.pointer, doc.path.parent)
        out += [p for _, p in ref.raw() if isinstance(p, str)]
    return out


if __name__ == "__main__":
    raise SystemExit(main())
