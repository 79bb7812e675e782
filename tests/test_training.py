"""The training script of the embedded model: a few steps on a small corpus, end to end.

The full run (python -m recipe_engine.training.train --out DIR, ~8 minutes on 2 cores) made
recipe_engine/builtin_weights/tiny-sentiment; here it must run, save a loadable model, and be
deterministic for a seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from recipe_engine.training.corpus import generate_corpus
from recipe_engine.training.train import TrainConfig, train

SMALL = dict(steps=4, batch_size=8, n_documents=400, n_embd=32, n_layer=2, n_head=2, warmup=2)


def test_corpus_is_deterministic_for_a_seed() -> None:
    assert generate_corpus(50, seed=1) == generate_corpus(50, seed=1)
    assert generate_corpus(50, seed=1) != generate_corpus(50, seed=2)


def test_a_few_training_steps_save_a_loadable_deterministic_model(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    threads = torch.get_num_threads()  # train() sets its own thread count
    try:
        info = train(first, TrainConfig(**SMALL), log_every=1)  # type: ignore[arg-type]
        train(second, TrainConfig(**SMALL), log_every=1)  # type: ignore[arg-type]
    finally:
        torch.set_num_threads(threads)
    assert info["steps"] == 4 and info["final_loss"] > 0
    saved = json.loads((first / "training.json").read_text())
    assert saved["seed"] == 0
    a, b = load_file(str(first / "model.safetensors")), load_file(str(second / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    model = AutoModelForCausalLM.from_pretrained(str(first), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(first), local_files_only=True)
    with torch.inference_mode():
        logits = model(**tokenizer("The pizza was", return_tensors="pt")).logits
    assert logits.shape[-1] == model.config.vocab_size
