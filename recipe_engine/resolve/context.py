"""Do prompts fit the model? A prompt longer than a model's table of learned positions (GPT-2's
`wpe`, OPT's `embed_positions`) makes torch fail deep inside the forward pass with a bare
"IndexError: index out of range in self"; checked here first, it is a one-line error naming the
prompt, its length in tokens and the limit.

Only learned position tables are a hard limit. Rotary and ALiBi models (Llama, GPT-NeoX, BLOOM)
run past their trained context, if worse, so they are not refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Any

import torch

__all__ = ["PromptTooLong", "check_prompt_lengths", "learned_positions"]

_POSITION_TABLES = ("wpe", "embed_positions", "position_embeddings")
_CHUNK = 256


@dataclass(eq=False)
class PromptTooLong(ValueError):
    index: int  # 0-based, in the order the prompts were given
    prompt: str
    tokens: int
    extra: int
    limit: int

    def __str__(self) -> str:
        start = self.prompt[:40] + ("..." if len(self.prompt) > 40 else "")
        plus = f" + {self.extra} generated" if self.extra else ""
        return (
            f"prompt {self.index + 1} ({start!r}) is {self.tokens} tokens{plus}, more than the "
            f"{self.limit} positions the model has learned; shorten it"
        )


def learned_positions(model: Any) -> int | None:
    """Length of a LoadedModel's learned position table, or None when positions are unbounded
    or the module tree is not here to look at (a backend that holds no torch module)."""
    try:
        hf = model.hf
    except AttributeError:
        return None
    if not hasattr(hf, "named_modules"):
        return None
    token_table = hf.get_input_embeddings() if hasattr(hf, "get_input_embeddings") else None
    for name, module in hf.named_modules():
        if (
            isinstance(module, torch.nn.Embedding)
            and module is not token_table
            and name.rsplit(".", 1)[-1] in _POSITION_TABLES
        ):
            # OPT offsets its positions by 2 (the table is 2 rows longer than the context).
            return int(module.num_embeddings) - int(getattr(module, "offset", 0))
    return None


def check_prompt_lengths(model: Any, prompts: Iterable[str], *, extra: int = 0) -> None:
    """Raise PromptTooLong for the first prompt that, with `extra` generated tokens, would not
    fit a LoadedModel's learned positions. Tokenizes in chunks: a prompt file is never held
    whole."""
    limit = learned_positions(model)
    if limit is None:
        return
    iterator = iter(prompts)
    index = 0
    while chunk := list(islice(iterator, _CHUNK)):
        for prompt, ids in zip(chunk, model.tokenizer(chunk)["input_ids"], strict=True):
            if len(ids) + extra > limit:
                raise PromptTooLong(index, prompt, len(ids), extra, limit)
            index += 1
