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
from recipe_engine.serve.protocol import ChatRequest, CompletionRequest, fallback_chat_prompt
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
    return gen.model_copy(update=update)


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


def prepare(state: ServerState, body: CompletionRequest | ChatRequest) -> Prepared:
    profile = choose_profile(state, body)
    strength = _strength(state, body, profile)
    if isinstance(body, ChatRequest):
        prompts, limit = [chat_prompt(state, body)], body.token_limit()
    else:
        prompts, limit = body.prompts(), body.max_tokens
    gen = _generation(state, body, limit, profile)
    counted = sum(_count_tokens(state, p, gen.max_new_tokens) for p in prompts)
    rows = [Row(p, profile, strength, gen) for p in prompts]
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    return Prepared(rows, counted, profile, strength, [s for s in stop if s])
