"""`kind: sae_feature`: a direction from a sparse autoencoder's decoder row, in sae-lens's layout.

The SAE is trained here, in seconds, on the embedded model's block-0 residual stream (read with
a plain PyTorch forward hook), and saved as sae-lens saves one (cfg.json + sae_weights.safetensors
with W_enc, b_enc, W_dec, b_dec). The feature's top tokens are computed here by hand (the
unembedding of its decoder row, through the final norm); steering with the feature must raise
their probability.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from recipe_engine.pipeline import compile_recipe, load_recipe, run_recipe
from tests.conftest import RECIPES

D_SAE = 64


def _activations(hf: torch.nn.Module, tokenizer: object) -> torch.Tensor:
    texts = []
    for name in ("positive.txt", "negative.txt", "neutral.txt", "food.txt", "tech.txt"):
        texts += (RECIPES / "data" / name).read_text().splitlines()
    grabbed: list[torch.Tensor] = []
    block = hf.transformer.h[0]  # type: ignore[union-attr,index]
    handle = block.register_forward_hook(
        lambda _m, _i, out: grabbed.append(out[0] if isinstance(out, tuple) else out)
    )
    with torch.no_grad():
        for text in texts:
            if text.strip():
                hf(torch.tensor([tokenizer(text)["input_ids"]]))  # type: ignore[operator]
    handle.remove()
    return torch.cat([g[0] for g in grabbed])


def _train_sae(acts: torch.Tensor, folder: Path) -> None:
    torch.manual_seed(0)
    d_in = acts.shape[1]
    w_enc = torch.nn.Parameter(torch.randn(d_in, D_SAE) * 0.1)
    b_enc = torch.nn.Parameter(torch.zeros(D_SAE))
    w_dec = torch.nn.Parameter(w_enc.detach().T.clone())
    b_dec = torch.nn.Parameter(acts.mean(0).clone())
    opt = torch.optim.Adam([w_enc, b_enc, w_dec, b_dec], lr=3e-3)
    for _ in range(300):
        f = torch.relu((acts - b_dec) @ w_enc + b_enc)
        loss = ((f @ w_dec + b_dec - acts) ** 2).sum(-1).mean() + 1e-2 * f.sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            w_dec /= w_dec.norm(dim=1, keepdim=True)  # unit decoder rows, as sae-lens keeps them
    folder.mkdir()
    tensors = {"W_enc": w_enc, "b_enc": b_enc, "W_dec": w_dec, "b_dec": b_dec}
    save_file(
        {k: v.detach().contiguous() for k, v in tensors.items()}, folder / "sae_weights.safetensors"
    )
    cfg = {
        "hook_name": "blocks.0.hook_resid_post",
        "hook_layer": 0,
        "d_in": d_in,
        "d_sae": D_SAE,
        "architecture": "standard",
    }
    (folder / "cfg.json").write_text(json.dumps(cfg))


RECIPE = """\
version: 1
name: sae
include: [{fragment}]
vectors:
  feature: {{kind: sae_feature, path: sae/sae_weights.safetensors, feature: {feature}}}
interventions:
  - {{vector: feature, op: add, layers: 0, strength: 40.0}}
run: {{mode: trace, prompts: {{file: {prompts}}}}}
report: {{metrics: []}}
"""


def test_steering_with_a_feature_raises_its_top_tokens(tmp_path: Path) -> None:
    probe = compile_recipe(load_recipe(RECIPES / "activation-addition.yaml"))
    hf, tokenizer = probe.model.hf, probe.model.tokenizer
    _train_sae(_activations(hf, tokenizer), tmp_path / "sae")

    decoder = load_file(str(tmp_path / "sae" / "sae_weights.safetensors"))["W_dec"]
    final_norm, unembed = hf.transformer.ln_f, hf.lm_head  # type: ignore[union-attr]
    with torch.no_grad():
        lens = unembed(final_norm(decoder))  # [d_sae, vocab]: each feature's token effect
    feature = int(lens.max(dim=1).values.argmax())  # the feature with the sharpest token effect
    top = lens[feature].topk(5).indices

    recipe = tmp_path / "sae.yaml"
    recipe.write_text(
        RECIPE.format(
            feature=feature,
            fragment=RECIPES / "_fragments" / "tiny-model.yaml",
            prompts=RECIPES / "data" / "neutral.txt",
        )
    )
    compiled = compile_recipe(load_recipe(recipe, allow_outside_root=True))
    built = compiled.vectors["feature"]
    assert torch.equal(built.tensor, decoder[feature])
    assert built.provenance["layer"] == 0 and built.provenance["site"] == "resid_post"
    passes = run_recipe(compiled).passes
    before = torch.softmax(passes["baseline"].next_logits.float(), -1)[:, top].sum(-1)
    after = torch.softmax(passes["steered"].next_logits.float(), -1)[:, top].sum(-1)
    print(
        f"feature {feature}: top-5 token mass {float(before.mean()):.4f} -> "
        f"{float(after.mean()):.4f}"
    )
    assert bool((after > before).all())
    assert float(after.mean()) > 3 * float(before.mean())  # measured: 4.7x
