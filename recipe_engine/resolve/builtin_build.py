"""Build the builtin models from their registry configs: deterministic, offline, instant.

The random-weight builtins are made on first use from a seed (same seed, same weights, on any
machine), with a byte-level tokenizer that needs no training.
"""

from __future__ import annotations

from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from recipe_engine.builtin_models import BUILTINS, BuiltinModel

__all__ = ["build_builtin", "byte_tokenizer"]

EOS = "<|endoftext|>"


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE with no merges: 256 byte symbols + one special token (id 256)."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {symbol: i for i, symbol in enumerate(sorted(alphabet))}
    vocab[EOS] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOS,
        eos_token=EOS,
        pad_token=EOS,
        unk_token=EOS,
        # No token_type_ids: GPT-2 would add wte(token_type_ids) and shift logits silently.
        model_input_names=["input_ids", "attention_mask"],
    )


def _build_random(spec: BuiltinModel) -> PreTrainedModel:
    config: Any = AutoConfig.for_model(spec.model_type, **spec.config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = AutoModelForCausalLM.from_config(config)
    model.eval()
    return model


def _load_trained(spec: BuiltinModel) -> tuple[PreTrainedModel, Any]:
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar for loading a 4 MB file is noise
    folder = spec.weights_dir
    assert folder is not None
    model = AutoModelForCausalLM.from_pretrained(
        str(folder), local_files_only=True, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model.eval()
    return model, tokenizer


def build_builtin(name: str) -> tuple[PreTrainedModel, Any]:
    spec = BUILTINS[name]
    if spec.weights_dir is not None:
        return _load_trained(spec)
    return _build_random(spec), byte_tokenizer()
