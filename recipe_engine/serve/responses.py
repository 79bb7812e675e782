"""Replies in OpenAI's shapes: a completion or chat completion (JSON), or the same as a stream
of chunks (server-sent events), with `usage` and the steering that produced it (`steering` in
the body, X-Steer-* headers).

A stream's chunks are sent as its tokens are generated (serve/live.py): per choice, a first
chunk, one per token, then one with its finish reason; the usage last when asked for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from recipe_engine.execute.logprobs import TokenLogprob
from recipe_engine.serve.engine import RowLogprobs, RowResult
from recipe_engine.serve.requests import Prepared

__all__ = [
    "Choice",
    "Reply",
    "chat_logprobs",
    "completion_logprobs",
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
    cut: bool = False  # cut at a stop string (the tokens after it are not the reply's)

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def cut_at_stop(result: RowResult, stops: list[str], min_tokens: int | None = None) -> Choice:
    """The tokens up to the first stop string (which is dropped, as OpenAI does). A stop
    string that ends within the first `min_tokens` tokens' text does not count (vLLM's rule:
    the engine did not end the row there either)."""
    text = result.text
    early = len("".join(result.pieces[: min_tokens or 0]))
    found = [text.find(s, max(0, early - len(s) + 1)) for s in stops]
    cuts = [at for at in found if at >= 0]
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
    return Choice(pieces, "stop", cut=True)


def _kept(choice: Choice, scores: RowLogprobs) -> list[TokenLogprob]:
    """The new tokens' entries that the reply keeps: those of its pieces (a stop string cuts
    the rest), or all of them, the EOS it ended on included."""
    return scores.new[: len(choice.pieces)] if choice.cut else scores.new


def completion_logprobs(choice: Choice, scores: RowLogprobs, echo: str | None) -> dict[str, object]:
    """OpenAI's legacy completion `logprobs`: tokens, token_logprobs, top_logprobs (a dict per
    token, None for the first token of an echoed prompt) and each token's text_offset."""
    names = scores.names
    entries = (scores.prompt if echo is not None else []) + _kept(choice, scores)
    offsets, at = [], 0
    texts = [names[e.token] for e in scores.prompt] if echo is not None else []
    texts += list(choice.pieces) + [""] * (len(entries) - len(texts) - len(choice.pieces))
    for text in texts:
        offsets.append(at)
        at += len(text)
    return {
        "tokens": [names[e.token] for e in entries],
        "token_logprobs": [e.logprob for e in entries],
        "top_logprobs": [
            None if e.logprob is None else {names[i]: lp for i, lp in e.top} for e in entries
        ],
        "text_offset": offsets,
    }


def _token(name: str, logprob: float) -> dict[str, object]:
    return {"token": name, "logprob": logprob, "bytes": list(name.encode())}


def chat_logprobs(choice: Choice, scores: RowLogprobs) -> dict[str, object]:
    """OpenAI's chat `logprobs`: `content`, one entry per token with its top_logprobs."""
    names = scores.names
    return {
        "content": [
            {
                **_token(names[e.token], e.logprob or 0.0),
                "top_logprobs": [_token(names[i], lp) for i, lp in e.top],
            }
            for e in _kept(choice, scores)
        ],
        "refusal": None,
    }


@dataclass
class Reply:
    id: str
    model: str
    chat: bool
    prepared: Prepared
    results: list[RowResult]
    created: int = field(default_factory=lambda: int(time.time()))

    def choices(self) -> list[Choice]:
        rows = self.prepared.rows
        return [
            cut_at_stop(r, self.prepared.stop, row.generation.min_new_tokens)
            for r, row in zip(self.results, rows, strict=True)
        ]

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
    prepared = reply.prepared
    for index, (choice, result) in enumerate(zip(reply.choices(), reply.results, strict=True)):
        scores = result.logprobs if prepared.logprobs is not None else None
        if reply.chat:
            message = {"role": "assistant", "content": choice.text}
            choices.append(
                {
                    "index": index,
                    "message": message,
                    "finish_reason": choice.finish_reason,
                    "logprobs": None if scores is None else chat_logprobs(choice, scores),
                }
            )
        else:
            echo = prepared.rows[index].prompt if prepared.echo else None
            choices.append(
                {
                    "index": index,
                    "text": (echo or "") + choice.text,
                    "finish_reason": choice.finish_reason,
                    "logprobs": None
                    if scores is None
                    else completion_logprobs(choice, scores, echo),
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
