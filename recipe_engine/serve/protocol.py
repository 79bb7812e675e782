"""The OpenAI request bodies `steer serve` accepts, and how a chat becomes a prompt.

Fields the engine does not implement (tools, best_of other than n...) are refused with a 400
naming them rather than silently ignored; the values that change nothing are accepted (user,
stream options, presence and frequency penalties of 0, `response_format: {type: text}`,
`tool_choice: "none"`, `parallel_tool_calls`, `store: false`, `metadata`). Types are strict, as
OpenAI's: `max_tokens: "6"` or `true`, `stream: "yes"` are refused, not coerced. Steering fields
(`profile`, `strength`) come at the top level, which is where the openai client puts
`extra_body`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

__all__ = [
    "MAX_LOGPROBS",
    "MAX_N",
    "MAX_STOPS",
    "MAX_STOP_CHARS",
    "ChatMessage",
    "ChatRequest",
    "CompletionRequest",
    "ResponseFormat",
    "StreamOptions",
    "TextPart",
    "fallback_chat_prompt",
]


# OpenAI's limits: at most 4 stop strings; a seed is a signed 64-bit integer. Each stop string
# is held back from a stream while its start may be forming (serve/live.py): capped in length.
MAX_STOPS = 4
MAX_STOP_CHARS = 1024
SEED_MIN, SEED_MAX = -(1 << 63), (1 << 63) - 1
MAX_LOGPROBS = 20  # OpenAI's limit on logprobs / top_logprobs
MAX_N = 16  # choices per prompt

_STRICT = ConfigDict(extra="forbid", strict=True)


class StreamOptions(BaseModel):
    model_config = _STRICT

    include_usage: bool = False
    continuous_usage_stats: Literal[False] | None = None  # vLLM's; usage comes last, once


class ResponseFormat(BaseModel):
    model_config = _STRICT

    type: Literal["text"]  # plain text is what is generated; json modes are not implemented


StopString = Annotated[str, Field(max_length=MAX_STOP_CHARS)]


class _Body(BaseModel):
    model_config = _STRICT

    model: str = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=0)  # 0: score the prompt (echo) only
    # vLLM's: EOS and stop strings cannot end a row before this many tokens (0 or None: off)
    min_tokens: int | None = Field(default=None, ge=0)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=-1)  # vLLM's; -1 or 0: off
    seed: int | None = Field(default=None, ge=SEED_MIN, le=SEED_MAX)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=MAX_N)  # choices per prompt
    stop: StopString | Annotated[list[StopString], Field(max_length=MAX_STOPS)] | None = None
    user: str | None = None
    presence_penalty: Literal[0] | None = None
    frequency_penalty: Literal[0] | None = None
    # accepted values that change nothing here
    response_format: ResponseFormat | None = None
    tool_choice: Literal["none"] | None = None
    parallel_tool_calls: bool | None = None
    store: Literal[False] | None = None
    metadata: dict[str, str] | None = None
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
        # "", [] and [""] alike are refused: an empty prompt would generate from BOS alone
        empty = value in ("", []) or (isinstance(value, list) and any(v in ("", []) for v in value))
        if empty:
            raise ValueError("must not be empty: give a string, token ids, or a list of either")
        return value

    def prompts(self) -> list[Prompt]:
        prompt = self.prompt
        if isinstance(prompt, str) or (prompt and isinstance(prompt[0], int)):
            return [prompt]
        return list(prompt)  # type: ignore[arg-type]


class TextPart(BaseModel):
    model_config = _STRICT

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = _STRICT

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None  # None: an assistant turn without text (OpenAI's)
    name: str | None = None

    @model_validator(mode="after")
    def _content_given(self) -> ChatMessage:
        if self.content is None and self.role != "assistant":
            raise ValueError("content may be null only in an assistant message")
        return self

    def text(self) -> str:
        if self.content is None:
            return ""
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
