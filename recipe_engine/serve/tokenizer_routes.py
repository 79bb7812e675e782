"""The tokenizer endpoints vLLM serves (`/tokenize`, `/detokenize`, `/tokenizer_info`): what
lm-evaluation-harness's `local-completions` looks for with its default `tokenizer_backend=auto`.
With them it tokenizes through this server (no tokenizer to download) and sends token-id
prompts, which the completions route takes as they are."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from recipe_engine.serve.state import ServerState

__all__ = ["add_tokenizer_routes"]


class TokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # vLLM's own extras (return_token_strs, ...)

    prompt: str
    model: str | None = None
    add_special_tokens: bool = True  # vLLM's default


class DetokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tokens: list[StrictInt] = Field(max_length=1 << 16)
    model: str | None = None


def _special(tokenizer: object, name: str) -> str | None:
    value = getattr(tokenizer, name, None)
    return value if isinstance(value, str) else None


def add_tokenizer_routes(app: FastAPI, state: ServerState) -> None:
    tokenizer = state.tokenizer  # the server's own copy (ServerState), shared by the routes
    lock = asyncio.Lock()  # a tokenizer is not safe to call from two threads at once

    async def encode(text: str, special: bool) -> list[int]:
        async with lock:
            ids: list[int] = tokenizer(text, add_special_tokens=special)["input_ids"]
            return ids

    @app.get("/tokenizer_info")
    async def tokenizer_info() -> dict[str, object]:
        return {
            "tokenizer_class": type(tokenizer).__name__,
            "eos_token": _special(tokenizer, "eos_token"),
            "bos_token": _special(tokenizer, "bos_token"),
            "pad_token": _special(tokenizer, "pad_token"),
            "unk_token": _special(tokenizer, "unk_token"),
            "chat_template": getattr(tokenizer, "chat_template", None),
            "model_max_length": state.position_limit,
            "vocab_size": len(tokenizer),
        }

    @app.post("/tokenize")
    async def tokenize(body: TokenizeRequest) -> dict[str, object]:
        limit = state.config.max_body_bytes  # the body limit bounds the text already
        tokens = await encode(body.prompt[:limit], body.add_special_tokens)
        return {"count": len(tokens), "max_model_len": state.position_limit, "tokens": tokens}

    @app.post("/detokenize")
    async def detokenize(body: DetokenizeRequest) -> dict[str, object]:
        size = len(tokenizer)
        ids = [i for i in body.tokens if 0 <= i < size]
        async with lock:
            return {"prompt": tokenizer.decode(ids)}
