"""Replies in OpenAI's shapes: a completion or chat completion (JSON), or the same as a stream
of chunks (server-sent events), with `usage` and the steering that produced it (`steering` in
the body, X-Steer-* headers).

A stream is sent once its batch has finished: the engine generates a batch as one call, so the
chunks (one per token) come all at once, in order, rather than as each token is decoded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from recipe_engine.serve.engine import RowResult
from recipe_engine.serve.requests import Prepared

__all__ = ["Reply", "reply_chunks", "reply_json", "steering_headers"]


@dataclass
class Choice:
    pieces: list[str]  # the text of each token kept
    finish_reason: str

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def _cut_at_stop(result: RowResult, stops: list[str]) -> Choice:
    """The tokens up to the first stop string (which is dropped, as OpenAI does)."""
    text = result.text
    cuts = [text.find(s) for s in stops if s in text]
    if not cuts:
        return Choice(list(result.pieces), result.finish_reason)
    end = min(cuts)
    pieces: list[str] = []
    used = 0
    for piece in result.pieces:
        if used >= end:
            break
        pieces.append(piece[: end - used])
        used += len(piece)
    return Choice(pieces, "stop")


@dataclass
class Reply:
    id: str
    model: str
    chat: bool
    prepared: Prepared
    results: list[RowResult]
    created: int = field(default_factory=lambda: int(time.time()))

    def choices(self) -> list[Choice]:
        return [_cut_at_stop(r, self.prepared.stop) for r in self.results]

    def usage(self) -> dict[str, int]:
        completion = sum(len(c.pieces) for c in self.choices())
        prompt = self.prepared.prompt_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def steering(self) -> dict[str, object]:
        profile = self.prepared.profile
        return {
            "profile": profile.name if profile else None,
            "strength": self.prepared.strength,
            "vectors": dict(profile.vector_hashes) if profile else {},
        }

    def head(self, kind: str) -> dict[str, object]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}


def steering_headers(prepared: Prepared) -> dict[str, str]:
    profile = prepared.profile
    if profile is None:
        return {"X-Steer-Profile": "none"}
    vectors = ",".join(f"{n}={h}" for n, h in profile.vector_hashes.items())
    headers = {"X-Steer-Profile": profile.name, "X-Steer-Vectors": vectors}
    if prepared.strength is not None:
        headers["X-Steer-Strength"] = repr(prepared.strength)
    return headers


def reply_json(reply: Reply) -> dict[str, object]:
    choices: list[dict[str, object]] = []
    for index, choice in enumerate(reply.choices()):
        if reply.chat:
            message = {"role": "assistant", "content": choice.text}
            choices.append(
                {
                    "index": index,
                    "message": message,
                    "finish_reason": choice.finish_reason,
                    "logprobs": None,
                }
            )
        else:
            choices.append(
                {
                    "index": index,
                    "text": choice.text,
                    "finish_reason": choice.finish_reason,
                    "logprobs": None,
                }
            )
    kind = "chat.completion" if reply.chat else "text_completion"
    return {
        **reply.head(kind),
        "choices": choices,
        "usage": reply.usage(),
        "steering": reply.steering(),
    }


def reply_chunks(reply: Reply, include_usage: bool) -> list[dict[str, object]]:
    """The stream: per choice, one chunk per token, then one with the finish reason; the
    steering in every chunk; the usage in a last chunk without choices when asked for."""
    kind = "chat.completion.chunk" if reply.chat else "text_completion"
    chunks: list[dict[str, object]] = []
    steering = reply.steering()

    def chunk(index: int, piece: str | None, finish: str | None, first: bool) -> None:
        if reply.chat:
            delta: dict[str, str] = {"role": "assistant"} if first else {}
            if piece is not None:
                delta["content"] = piece
            body: dict[str, object] = {"index": index, "delta": delta}
        else:
            body = {"index": index, "text": piece or ""}
        body.update(finish_reason=finish, logprobs=None)
        chunks.append({**reply.head(kind), "choices": [body], "steering": steering})

    for index, choice in enumerate(reply.choices()):
        chunk(index, "" if reply.chat else None, None, first=True)
        for piece in choice.pieces:
            if piece:
                chunk(index, piece, None, first=False)
        chunk(index, None, choice.finish_reason, first=False)
    if include_usage:
        chunks.append({**reply.head(kind), "choices": [], "usage": reply.usage()})
    return chunks
