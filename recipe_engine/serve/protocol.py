"""The OpenAI request bodies `steer serve` accepts, and how a chat becomes a prompt.

Fields the engine does not implement (logprobs, tools, n > 1...) are refused with a 400 naming
them rather than silently ignored, except the few that change nothing here (user, stream
options, presence and frequency penalties of 0). Steering fields (`profile`, `strength`) come at
the top level, which is where the openai client puts `extra_body`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ChatMessage",
    "ChatRequest",
    "CompletionRequest",
    "StreamOptions",
    "TextPart",
    "fallback_chat_prompt",
]


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_usage: bool = False


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: Literal[1] = 1
    stop: str | list[str] | None = None
    user: str | None = None
    presence_penalty: Literal[0] | None = None
    frequency_penalty: Literal[0] | None = None
    # steering (the openai client's extra_body lands here)
    profile: str | None = None
    strength: float | None = None


class CompletionRequest(_Body):
    prompt: str | list[str] = Field(min_length=1)
    echo: Literal[False] = False

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ChatRequest(_Body):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)

    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


def fallback_chat_prompt(messages: Sequence[tuple[str, str]]) -> str:
    """The prompt of a chat for a tokenizer without a chat template: one line per message,
    `role: content`, then `assistant:` for the model to continue (README, steer serve)."""
    lines = [f"{role}: {content}" for role, content in messages]
    return "\n".join([*lines, "assistant:"])
