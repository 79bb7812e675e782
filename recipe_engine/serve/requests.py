"""From an OpenAI request to engine rows: which profile, which strength, which generation
settings, which prompt, each checked against the server's limits. Every refusal is an ApiError
with the HTTP status and a message saying what to change."""

from __future__ import annotations

import math
from dataclasses import dataclass

from recipe_engine.format.run_spec import GenerationSpec
from recipe_engine.load.prompt_files import Conversation
from recipe_engine.resolve.chat import ChatTemplateError, render_conversation
from recipe_engine.serve.engine import Row
from recipe_engine.serve.profiles import Profile
from recipe_engine.serve.protocol import (
    ChatRequest,
    CompletionRequest,
    Prompt,
    fallback_chat_prompt,
)
from recipe_engine.serve.state import ServerState

__all__ = ["ApiError", "Prepared", "chat_prompt", "prepare"]


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.param = param
        self.code = code


@dataclass
class Prepared:
    rows: list[Row]
    prompt_tokens: int
    profile: Profile | None
    strength: float | None
    stop: list[str]
    echo: bool = False  # each choice's text begins with its prompt
    logprobs: int | None = None  # top k per token (chat: with `logprobs: true`)


def choose_profile(state: ServerState, body: CompletionRequest | ChatRequest) -> Profile | None:
    """`model: NAME:PROFILE`, or `profile` in the body (extra_body); neither: unsteered."""
    name = state.config.name
    model, profile = body.model, body.profile
    if model != name and model != state.config.model:
        head, sep, tail = model.rpartition(":")
        if not sep or head not in (name, state.config.model):
            raise ApiError(
                404,
                f"unknown model {model!r}: this server serves {name!r} and "
                f"{name!r}:PROFILE (GET /v1/models lists them)",
                param="model",
                code="model_not_found",
            )
        if profile is not None and profile != tail:
            raise ApiError(
                400,
                f"model names profile {tail!r} but profile is {profile!r}: give one",
                param="profile",
            )
        profile = tail
    if profile is None:
        return None
    found = state.store.get(profile)
    if found is None:
        known = ", ".join(state.store.names()) or "none"
        raise ApiError(
            404,
            f"unknown profile {profile!r} (profiles: {known})",
            param="profile",
            code="profile_not_found",
        )
    return found


# Ops whose output does not depend on the strength (execute/ops.py).
_IGNORE_STRENGTH = frozenset({"zero", "mean_ablate"})


def _strength(
    state: ServerState, body: CompletionRequest | ChatRequest, profile: Profile | None
) -> float | None:
    if body.strength is None:
        return None
    if profile is None:
        raise ApiError(400, "strength needs a profile (model NAME:PROFILE)", param="strength")
    if not math.isfinite(body.strength):
        raise ApiError(
            400, f"strength must be a finite number, not {body.strength}", param="strength"
        )
    ops = {i.op for i in profile.compiled.recipe.interventions}
    if ops <= _IGNORE_STRENGTH:
        raise ApiError(
            400,
            f"profile {profile.name!r} has no strength to set: its interventions "
            f"({', '.join(sorted(ops))}) do not read one; leave strength out",
            param="strength",
        )
    limit = state.config.max_strength
    if not abs(body.strength) <= limit:
        raise ApiError(
            400,
            f"strength {body.strength} is over this server's limit of {limit} "
            "(steer serve --max-strength)",
            param="strength",
        )
    return float(body.strength)


def _generation(
    state: ServerState,
    body: CompletionRequest | ChatRequest,
    limit: int | None,
    profile: Profile | None,
) -> GenerationSpec:
    """The profile's generation settings (the defaults when unsteered), with the request's."""
    gen = profile.generation if profile is not None else GenerationSpec()
    update: dict[str, object] = {}
    if limit is not None:
        if limit > state.config.max_tokens:
            raise ApiError(
                400,
                f"max_tokens {limit} is over this server's limit of "
                f"{state.config.max_tokens} (steer serve --max-tokens)",
                param="max_tokens",
            )
        update["max_new_tokens"] = limit
    elif gen.max_new_tokens > state.config.max_tokens:
        update["max_new_tokens"] = state.config.max_tokens
    if body.temperature is not None:
        sampled = body.temperature > 0
        update["do_sample"] = sampled
        update["temperature"] = body.temperature if sampled else None
    if body.top_p is not None:
        update["top_p"] = body.top_p
    if body.top_k is not None:  # vLLM's spelling: -1 or 0 turn it off
        update["top_k"] = body.top_k if body.top_k > 0 else None
    if body.seed is not None:
        update["seed"] = body.seed
    if not update.get("do_sample", gen.do_sample):  # greedy: sampling knobs do nothing
        update.update(temperature=None, top_p=None, top_k=None)
    if body.min_tokens is not None:
        update["min_new_tokens"] = _min_tokens(body.min_tokens, update, gen)
    return gen.model_copy(update=update)


def _min_tokens(asked: int, update: dict[str, object], gen: GenerationSpec) -> int | None:
    """vLLM's `min_tokens` as transformers' min_new_tokens (0: off), at most max_tokens."""
    most = update.get("max_new_tokens", gen.max_new_tokens)
    if isinstance(most, int) and asked > most:
        raise ApiError(
            400,
            f"min_tokens {asked} is more than the {most} tokens this request generates at "
            f"most (max_tokens): lower min_tokens to {most} or less, or raise max_tokens",
            param="min_tokens",
        )
    return asked or None


def chat_prompt(state: ServerState, body: ChatRequest) -> str:
    """The conversation as `steer run` renders a chat prompt (resolve/chat.py): the tokenizer's
    chat template, each message's role span kept (so `positions: user`, `system`, `assistant`
    select what they select there), a trailing assistant message continued as a prefill.
    A tokenizer without a template: fallback_chat_prompt (no roles to select)."""
    messages = [("system" if m.role == "developer" else m.role, m.text()) for m in body.messages]
    if not getattr(state.tokenizer, "chat_template", None):
        return fallback_chat_prompt(messages)
    try:
        return render_conversation(state.tokenizer, Conversation(tuple(messages)))
    except ChatTemplateError as exc:
        raise ApiError(
            400, f"this conversation cannot be rendered: {exc}", param="messages"
        ) from None


def _check_ids(state: ServerState, ids: list[int], new_tokens: int) -> int:
    """A token-id prompt: every id in the vocabulary, within the same limits as a text."""
    size = len(state.tokenizer)
    bad = next((i for i in ids if not 0 <= i < size), None)
    if bad is not None:
        raise ApiError(
            400,
            f"prompt holds token id {bad}, outside this model's vocabulary (0 to {size - 1})",
            param="prompt",
        )
    return _within_limits(state, len(ids), new_tokens)


def _within_limits(state: ServerState, count: int, new_tokens: int) -> int:
    limit = state.config.max_prompt_tokens
    if count > limit:
        raise ApiError(
            400,
            f"prompt is {count} tokens, over this server's limit of {limit} "
            "(steer serve --max-prompt-tokens)",
            param="prompt",
        )
    positions = state.position_limit
    if positions is not None and count + new_tokens > positions:
        raise ApiError(
            400,
            f"prompt is {count} tokens + {new_tokens} to generate, more than the "
            f"{positions} positions the model has learned: shorten it or lower "
            "max_tokens",
            param="prompt",
        )
    return count


def _count_tokens(state: ServerState, prompt: str, new_tokens: int) -> int:
    limit = state.config.max_prompt_tokens
    if len(prompt) > 8 * limit:  # a token is rarely under 1/8 of a character: skip the work
        raise ApiError(
            400,
            f"prompt is {len(prompt)} characters, over this server's limit of "
            f"{limit} tokens (steer serve --max-prompt-tokens)",
            param="prompt",
        )
    count = len(state.tokenizer(prompt)["input_ids"])
    if count == 0:
        raise ApiError(400, "prompt is empty", param="prompt")
    return _within_limits(state, count, new_tokens)


def _choices(body: CompletionRequest | ChatRequest) -> int:
    """Choices per prompt: `n`; `best_of` only as n (the n choices are all the server makes)."""
    best_of = getattr(body, "best_of", None)
    if best_of is not None and best_of != body.n:
        raise ApiError(
            400,
            f"best_of {best_of} with n {body.n}: this server returns every choice it makes, "
            "so best_of must equal n (or be left out)",
            param="best_of",
        )
    return body.n


def _scoring(body: CompletionRequest | ChatRequest) -> tuple[bool, int | None]:
    """(echo, top k of logprobs) asked for, checked."""
    if isinstance(body, ChatRequest):
        if body.top_logprobs is not None and not body.logprobs:
            raise ApiError(400, "top_logprobs needs logprobs: true", param="top_logprobs")
        echo, k = False, (body.top_logprobs or 0) if body.logprobs else None
    else:
        echo, k = body.echo, body.logprobs
    if (echo or k is not None) and body.stream:
        raise ApiError(
            400,
            "logprobs and echo are answered whole, not streamed: leave out stream",
            param="stream",
        )
    if body.max_tokens == 0 and not echo:
        raise ApiError(
            400,
            "max_tokens 0 generates nothing: give at least 1 (0 only with echo, to score "
            "the prompt)",
            param="max_tokens",
        )
    return echo, k


def _prompt_row(
    state: ServerState, prompt: Prompt, wants_ids: bool, new_tokens: int
) -> tuple[str, tuple[int, ...] | None, int]:
    """(text, ids the model reads or None, token count) of one prompt."""
    if isinstance(prompt, str):
        count = _count_tokens(state, prompt, new_tokens)
        ids = tuple(state.tokenizer(prompt)["input_ids"]) if wants_ids else None
        return prompt, ids, count
    count = _check_ids(state, prompt, new_tokens)
    return state.tokenizer.decode(prompt), tuple(prompt), count


def prepare(state: ServerState, body: CompletionRequest | ChatRequest) -> Prepared:
    profile = choose_profile(state, body)
    strength = _strength(state, body, profile)
    echo, k = _scoring(body)
    n = _choices(body)
    prompts: list[Prompt]
    if isinstance(body, ChatRequest):
        prompts, limit = [chat_prompt(state, body)], body.token_limit()
    else:
        prompts, limit = body.prompts(), body.max_tokens
    gen = _generation(state, body, limit or None, profile)
    new_tokens = 0 if limit == 0 else gen.max_new_tokens
    ids_given = any(not isinstance(p, str) for p in prompts)
    if ids_given and profile is not None and profile.plan(strength).text_positions():
        raise ApiError(
            400,
            f"profile {profile.name!r} steers by role or marker positions, which are "
            "found in a prompt's text: send the prompt as text, not token ids",
            param="prompt",
        )
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    stops = tuple(s for s in stop if s)
    rows: list[Row] = []
    counted = 0
    for prompt in prompts:
        text, ids, count = _prompt_row(state, prompt, echo and k is not None, new_tokens)
        counted += count
        row = Row(text, profile, strength, gen, ids, k, echo, new_tokens > 0, stops)
        rows += [row] * n
    return Prepared(rows, counted, profile, strength, list(stops), echo, k)
