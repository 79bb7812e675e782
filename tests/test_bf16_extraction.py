"""A bfloat16 model's extracted vectors equal a float32-accumulated plain-PyTorch reference.

The model is a small random Llama saved to a temp folder in bf16 and loaded by the engine from
that folder (`model.dtype: bfloat16`). The reference loads the same folder with transformers
alone, feeds the same left-padded batches (the engine sorts each window of prompts by token
length, stably, then cuts batches of `batch_size`), reads layer L's output with a forward hook,
widens each row to float32 and averages in float32. Summing the bf16 rows in bf16 instead moves
a 96-prompt mean_diff by far more than the 1e-3 bound (checked by the last test).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from recipe_engine.format.model_spec import ModelSpec
from recipe_engine.format.recipe import Recipe
from recipe_engine.resolve.model_loader import load_model
from recipe_engine.vectors.build import build_vectors

LAYER = 1
BATCH = 16  # the engine's CPU extraction batch for run.batch_size <= 16
WORDS = ["calm", "bright", "angry", "quiet", "stormy", "gentle", "lucky", "tired"]
POSITIVE = [f"I feel {WORDS[i % 8]} today{'!' * (i % 5)} number {i}" for i in range(96)]
NEGATIVE = [f"The weather was {WORDS[(i + 3) % 8]}{' very' * (i % 4)} at {i}" for i in range(96)]


def _byte_tokenizer() -> PreTrainedTokenizerFast:
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {symbol: i for i, symbol in enumerate(alphabet)} | {"<eos>": len(alphabet)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<eos>",
        pad_token="<eos>",
        model_input_names=["input_ids", "attention_mask"],
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bf16-llama")
    config = LlamaConfig(
        num_hidden_layers=3,
        hidden_size=64,
        intermediate_size=128,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        vocab_size=257,
        pad_token_id=256,
        eos_token_id=256,
        bos_token_id=256,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(path)
    _byte_tokenizer().save_pretrained(path)
    return path


def _reference_rows(folder: Path, prompts: list[str], position: str, sum_dtype: Any) -> Any:
    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    tok.padding_side = "left"
    lengths = [len(ids) for ids in tok(prompts)["input_ids"]]
    order = sorted(range(len(prompts)), key=lambda i: lengths[i])  # one window: <= 128 prompts
    kept: dict[int, torch.Tensor] = {}
    grabbed: list[torch.Tensor] = []
    handle = hf.model.layers[LAYER].register_forward_hook(
        lambda _m, _i, out: grabbed.append(out[0] if isinstance(out, tuple) else out)
    )
    for start in range(0, len(order), BATCH):
        rows = order[start : start + BATCH]
        encoded = tok([prompts[i] for i in rows], return_tensors="pt", padding=True)
        mask = encoded["attention_mask"]
        grabbed.clear()
        with torch.inference_mode():
            hf(**encoded, position_ids=(mask.cumsum(-1) - 1).clamp(min=0))
        hidden = grabbed[0]
        for b, i in enumerate(rows):
            if position == "last":
                kept[i] = hidden[b, -1].to(sum_dtype)
            else:  # mean over the real tokens (no special tokens: this tokenizer adds none)
                kept[i] = hidden[b][mask[b].bool()].to(sum_dtype).mean(dim=0)
    handle.remove()
    return torch.stack([kept[i] for i in range(len(prompts))])


def _engine(folder: Path, vector: dict[str, Any]) -> torch.Tensor:
    recipe = Recipe.model_validate(
        {
            "version": 1,
            "name": "bf16-extraction",
            "model": {"id": str(folder), "dtype": "bfloat16"},
            "vectors": {"v": vector},
            "run": {"mode": "trace", "prompts": ["x"], "batch_size": 8},
        }
    )
    model = load_model(ModelSpec(id=str(folder), dtype="bfloat16"), Path("."))
    assert next(model.hf.parameters()).dtype == torch.bfloat16
    return build_vectors(recipe, model, None, ["v"], cache=False)["v"].tensor


def _close(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).abs().max() / want.abs().max())


@pytest.mark.parametrize("position", ["last", "mean"])
def test_bf16_mean_diff_matches_float32_reference(folder: Path, position: str) -> None:
    spec = {"kind": "contrastive", "layer": LAYER, "position": position}
    got = _engine(folder, spec | {"positive": POSITIVE, "negative": NEGATIVE})
    pos = _reference_rows(folder, POSITIVE, position, torch.float32)
    neg = _reference_rows(folder, NEGATIVE, position, torch.float32)
    assert got.dtype == torch.float32
    assert _close(got, pos.mean(dim=0) - neg.mean(dim=0)) <= 1e-3


@pytest.mark.parametrize("position", ["last", "mean"])
def test_bf16_mean_activation_matches_float32_reference(folder: Path, position: str) -> None:
    spec = {"kind": "mean_activation", "layer": LAYER, "position": position}
    got = _engine(folder, spec | {"prompts": POSITIVE})
    want = _reference_rows(folder, POSITIVE, position, torch.float32).mean(dim=0)
    assert _close(got, want) <= 1e-3


def test_bf16_accumulation_would_break_the_bound(folder: Path) -> None:
    """The bound above can fail: averaging the same rows in bf16 misses it."""
    pos = _reference_rows(folder, POSITIVE, "mean", torch.float32)
    neg = _reference_rows(folder, NEGATIVE, "mean", torch.float32)
    exact = pos.mean(dim=0) - neg.mean(dim=0)
    in_bf16 = pos.bfloat16().mean(dim=0) - neg.bfloat16().mean(dim=0)
    assert _close(in_bf16.float(), exact) > 1e-3


def test_dtype_auto_loads_the_checkpoint_dtype(folder: Path) -> None:
    """`model.dtype: auto` keeps what the checkpoint holds (here bf16), on any device."""
    model = load_model(ModelSpec(id=str(folder), dtype="auto"), Path("."))
    assert {p.dtype for p in model.hf.parameters()} == {torch.bfloat16}
