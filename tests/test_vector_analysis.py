"""report.vector_tokens: what each vector says through the unembedding, in the run report."""

from __future__ import annotations

import torch

from recipe_engine.api import compile_recipe, load_recipe, run_recipe
from tests.conftest import RECIPES


def test_run_report_lists_tokens_boosted_and_suppressed() -> None:
    compiled = compile_recipe(
        load_recipe(RECIPES / "vector-arithmetic.yaml", overrides=["report.vector_tokens=3"])
    )
    report = run_recipe(compiled)
    model = compiled.model
    for name, built in compiled.vectors.items():
        with torch.inference_mode():
            logits = model.hf.lm_head.weight.float() @ built.tensor
            lens = model.hf.lm_head(model.hf.transformer.ln_f(built.tensor.unsqueeze(0)))[0]
            lens = lens.float()
        tokens = report.vectors[name]["tokens"]
        decode = model.tokenizer.decode
        assert [t for t, _ in tokens["raw"]["boosted"]] == [
            decode([i]) for i in logits.topk(3).indices.tolist()
        ]
        assert [t for t, _ in tokens["raw"]["suppressed"]] == [
            decode([i]) for i in (-logits).topk(3).indices.tolist()
        ]
        assert [t for t, _ in tokens["lens"]["boosted"]] == [
            decode([i]) for i in lens.topk(3).indices.tolist()
        ]
    assert "tokens" in report.to_json()["vectors"]["food_only"]


def test_vector_tokens_off_by_default() -> None:
    report = run_recipe(
        load_recipe(RECIPES / "vector-arithmetic.yaml", overrides=["report.vector_tokens=0"])
    )
    assert all("tokens" not in v for v in report.vectors.values())
