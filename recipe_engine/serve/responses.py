"""Replies in OpenAI's shapes: a completion or chat completion (JSON), or the same as a stream
of chunks (server-sent events), with `usage` and the steering that produced it (`steering` in
the body, X-Steer-* headers).

A stream's chunks are sent as its tokens are generated (serve/live.py): per choice, a first
chunk, one per token, then one with its finish reason; the usage last when asked for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from recipe_engine.serve.engine import RowResult
from recipe_engine.serve.requests import Prepared

__all__ = [
    "Choice",
    "Reply",
    "cut_at_stop",
    "reply_json",
    "steering_headers",
    "stream_chunk",
    "usage_chunk",
]


@dataclass
class Choice:
    pieces: list[str]  # the text of each token kept
    finish_reason: str

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def cut_at_stop(result: RowResult, stops: list[str]) -> Choice:
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
        return [cut_at_stop(r, self.prepared.stop) for r in self.results]

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

    def conditions(self) -> list[list[dict[str, object]]]:
        """Per choice: each `when:` of its plan, and whether it fired (execute/gates.py)."""
        return [
            [
                {
                    "intervention": gate.intervention,
                    "condition": gate.condition,
                    "fired": gate.fired,
                    "scores": list(gate.scores),
                }
                for gate in result.conditions
            ]
            for result in self.results
        ]

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
    steering = reply.steering()
    conditions = reply.conditions()
    if any(conditions):  # a profile with `when:`: per choice, which fired
        steering["conditions"] = conditions
    return {**reply.head(kind), "choices": choices, "usage": reply.usage(), "steering": steering}


def stream_chunk(
    reply: Reply, index: int, piece: str | None, finish: str | None, first: bool = False
) -> dict[str, object]:
    """One chunk of a stream: a piece of choice `index`'s text, or its finish reason; the
    role in a chat's first chunk; the steering in every chunk."""
    if reply.chat:
        delta: dict[str, str] = {"role": "assistant"} if first else {}
        if piece is not None:
            delta["content"] = piece
        body: dict[str, object] = {"index": index, "delta": delta}
    else:
        body = {"index": index, "text": piece or ""}
    body.update(finish_reason=finish, logprobs=None)
    kind = "chat.completion.chunk" if reply.chat else "text_completion"
    return {**reply.head(kind), "choices": [body], "steering": reply.steering()}


def usage_chunk(reply: Reply) -> dict[str, object]:
    """A stream's last chunk when the usage is asked for: no choices."""
    kind = "chat.completion.chunk" if reply.chat else "text_completion"
    return {**reply.head(kind), "choices": [], "usage": reply.usage()}
