"""The OpenAI request bodies `steer serve` accepts, and how a chat becomes a prompt.

Fields the engine does not implement (tools, best_of other than n...) are refused with a 400 naming
them rather than silently ignored, except the few that change nothing here (user, stream
options, presence and frequency penalties of 0). Steering fields (`profile`, `strength`) come at
the top level, which is where the openai client puts `extra_body`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

__all__ = [
    "MAX_LOGPROBS",
    "MAX_N",
    "ChatMessage",
    "ChatRequest",
    "CompletionRequest",
    "StreamOptions",
    "TextPart",
    "fallback_chat_prompt",
]


MAX_LOGPROBS = 20  # OpenAI's limit on logprobs / top_logprobs
MAX_N = 16  # choices per prompt


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_usage: bool = False


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=0)  # 0: score the prompt (echo) only
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=MAX_N)  # choices per prompt
    stop: str | list[str] | None = None
    user: str | None = None
    presence_penalty: Literal[0] | None = None
    frequency_penalty: Literal[0] | None = None
    # steering (the openai client's extra_body lands here)
    profile: str | None = None
    strength: float | None = None


# A prompt: text, or token ids (what lm-evaluation-harness sends once it has a tokenizer).
Prompt = str | list[StrictInt]


class CompletionRequest(_Body):
    prompt: str | list[str] | list[list[StrictInt]] | list[StrictInt]
    echo: bool = False  # the prompt comes first in each choice (with its logprobs if asked)
    logprobs: int | None = Field(default=None, ge=0, le=MAX_LOGPROBS)  # top k per token
    best_of: int | None = Field(default=None, ge=1, le=MAX_N)

    @field_validator("prompt")
    @classmethod
    def _some_prompt(cls, value: object) -> object:
        if isinstance(value, list) and (not value or any(v == [] for v in value)):
            raise ValueError("give a prompt: a string, token ids, or a list of either")
        return value

    def prompts(self) -> list[Prompt]:
        prompt = self.prompt
        if isinstance(prompt, str) or (prompt and isinstance(prompt[0], int)):
            return [prompt]
        return list(prompt)  # type: ignore[arg-type]


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
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_LOGPROBS)

    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


def fallback_chat_prompt(messages: Sequence[tuple[str, str]]) -> str:
    """The prompt of a chat for a tokenizer without a chat template: one line per message,
    `role: content`, then `assistant:` for the model to continue (README, steer serve)."""
    lines = [f"{role}: {content}" for role, content in messages]
    return "\n".join([*lines, "assistant:"])
