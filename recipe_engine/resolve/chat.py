"""Chat prompts -> the text the model reads, through the model's own chat template.

A rendered conversation is a `ChatText`: a str (so every pass, batch and report handles it as
the text it is) that also knows the character span of each role's text. Spans come from the
template itself, never from guessing its markup: the conversation is rendered a second time
with every message replaced by a one-character placeholder, and each placeholder's index, shifted
by the lengths of the messages before it, is where that message's text starts in the real
rendering (checked character by character, so a template that rewrites a message is refused
rather than mislocated). Tokens are then matched to spans by their character offsets
(resolve/chat_tokens.py). Torch-free: prompt sources render here, and `steer explain --no-model`
reads them without the run extra.

How a conversation is rendered: ending on a user or system turn, with `add_generation_prompt`
(the assistant's turn starts, and that header text counts as assistant); ending on an assistant
turn, with `continue_final_message` (a prefill the model continues).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recipe_engine.load.prompt_files import Conversation

__all__ = ["ChatTemplateError", "ChatText", "RoleSpan", "render_conversation"]

# Private-use characters: never in a real message, one character each.
_PLACEHOLDER_BASE = 0xF0000


class ChatTemplateError(ValueError):
    """The tokenizer cannot render this conversation (no template, or the template failed)."""


@dataclass(frozen=True)
class RoleSpan:
    role: str
    start: int  # character offsets in the rendered text, end exclusive
    end: int


class ChatText(str):
    """A rendered conversation: the text, plus the span of each role's text in it."""

    spans: tuple[RoleSpan, ...]

    def __new__(cls, text: str, spans: tuple[RoleSpan, ...] = ()) -> ChatText:
        # spans has a default so copy and pickle (which call __new__ with the text alone, then
        # restore the attributes) work.
        self = super().__new__(cls, text)
        self.spans = spans
        return self


def _render(tokenizer: Any, messages: list[dict[str, str]], final: bool, prompt: bool) -> str:
    text = tokenizer.apply_chat_template(
        messages,
        tokenize=False,
        add_generation_prompt=prompt,
        continue_final_message=final,
    )
    if not isinstance(text, str):
        raise ChatTemplateError("the chat template did not render to text")
    return text


def _has_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def _strip_doubled_bos(tokenizer: Any, text: str) -> tuple[str, int]:
    """Templates that write the BOS themselves, for a tokenizer that adds one too: keep the
    tokenizer's. Returns the text and how far its characters moved."""
    bos = getattr(tokenizer, "bos_token", None)
    if not bos or not text.startswith(bos):
        return text, 0
    ids = tokenizer("x")["input_ids"]
    if ids and ids[0] == tokenizer.bos_token_id:
        return text[len(bos) :], -len(bos)
    return text, 0


def render_conversation(tokenizer: Any, conversation: Conversation) -> ChatText:
    """The conversation as the model's chat template writes it, with each role's spans."""
    if not _has_template(tokenizer):
        raise ChatTemplateError(
            "the model's tokenizer has no chat template; give plain-text prompts, or a model "
            "with a chat template (an instruct/chat model)"
        )
    messages = conversation.as_json()
    final = messages[-1]["role"] == "assistant"  # continue the assistant's prefill
    try:
        text = _render(tokenizer, messages, final, not final)
        placeholders = [
            {"role": m["role"], "content": chr(_PLACEHOLDER_BASE + i)}
            for i, m in enumerate(messages)
        ]
        skeleton = _render(tokenizer, placeholders, final, not final)
        without_prompt = None if final else _render(tokenizer, messages, False, False)
    except ChatTemplateError:
        raise
    except Exception as exc:  # jinja's TemplateError, or a template's raise_exception()
        raise ChatTemplateError(f"the model's chat template failed: {exc}") from None
    spans: list[RoleSpan] = []
    shift = 0
    for index, message in enumerate(messages):
        at = skeleton.find(chr(_PLACEHOLDER_BASE + index))
        content = message["content"]
        start = at + shift
        written = next((c for c in (content, content.strip()) if text.startswith(c, start)), None)
        if at < 0 or written is None:
            raise ChatTemplateError(
                f"the chat template rewrites message {index} ({message['role']}); its tokens "
                "cannot be located exactly"
            )
        spans.append(RoleSpan(message["role"], start, start + len(written)))
        shift += len(written) - 1
    if without_prompt is not None and text.startswith(without_prompt):
        spans.append(RoleSpan("assistant", len(without_prompt), len(text)))
    text, offset = _strip_doubled_bos(tokenizer, text)
    moved = tuple(
        RoleSpan(s.role, s.start + offset, s.end + offset) for s in spans if s.end > s.start
    )
    return ChatText(text, moved)
