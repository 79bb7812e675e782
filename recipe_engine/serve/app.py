"""The HTTP face of `steer serve` (FastAPI): the OpenAI routes, health, profiles, and errors in
OpenAI's shape ({"error": {"message", "type", "param", "code"}}) so that clients show them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from recipe_engine.errors import RecipeError
from recipe_engine.serve.batcher import QueueFull
from recipe_engine.serve.deadline import Deadline
from recipe_engine.serve.engine import RowResult
from recipe_engine.serve.live import live_stream
from recipe_engine.serve.profiles import PROFILE_NAME, PostRefused
from recipe_engine.serve.protocol import ChatRequest, CompletionRequest
from recipe_engine.serve.requests import ApiError, Prepared, prepare
from recipe_engine.serve.responses import Reply, reply_json, steering_headers
from recipe_engine.serve.state import ServerState
from recipe_engine.serve.streams import Event, Listener
from recipe_engine.serve.tokenizer_routes import add_tokenizer_routes
from recipe_engine.serve.validation import explain_invalid

__all__ = ["create_app"]


class PostedRecipe(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(pattern=PROFILE_NAME.pattern)
    recipe: str  # the YAML text


def _error(exc: ApiError, state: ServerState | None = None) -> JSONResponse:
    message = exc.message if state is None else state.public(exc.message)
    body = {"error": {"message": message, "type": exc.kind, "param": exc.param, "code": exc.code}}
    return JSONResponse(body, status_code=exc.status)


def _submit(state: ServerState, prepared: Prepared, listener: Listener) -> list[Future[RowResult]]:
    limit = state.config.max_queue
    if len(prepared.rows) > limit:  # could never fit: not worth a retry
        raise ApiError(
            400,
            f"{len(prepared.rows)} prompts in one request, more than this server ever queues "
            f"({limit}, steer serve --max-queue): send them in smaller requests",
            param="prompt",
        )
    try:
        return state.batcher.submit(prepared.rows, listener)
    except QueueFull:
        raise ApiError(
            429,
            f"the server is busy ({limit} prompts waiting): retry later",
            kind="rate_limit_error",
        ) from None


def _refuse_failures(results: list[RowResult]) -> list[RowResult]:
    for result in results:
        if result.failure is not None:  # NaN/Inf logits: steer run's message, exit 3 there
            raise ApiError(500, result.failure, kind="server_error", code="non_finite_logits")
    return results


class _ClientGone(Exception):
    """A non-stream client disconnected before its answer."""


async def _complete(
    state: ServerState,
    prepared: Prepared,
    deadline: Deadline,
    client_gone: Callable[[], Awaitable[None]],
) -> list[RowResult]:
    """The rows' results; a client that leaves, or a deadline that passes, abandons its rows
    at once (the batcher skips those not started, a generate call of only abandoned rows
    stops at its next step)."""
    listener = Listener(None)  # results only; there to say when the request gives up
    futures = _submit(state, prepared, listener)
    answers: asyncio.Future[list[RowResult]] = asyncio.ensure_future(
        asyncio.gather(*[asyncio.wrap_future(f) for f in futures])
    )
    gone: asyncio.Future[None] = asyncio.ensure_future(client_gone())
    try:
        waiting: list[asyncio.Future[Any]] = [answers, gone]
        either = asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        await deadline.wait(either)
        if answers.done():
            return _refuse_failures(list(answers.result()))
        raise _ClientGone
    except asyncio.TimeoutError:
        raise deadline.error() from None
    finally:
        gone.cancel()
        if not answers.done():
            answers.cancel()
            listener.abandon()
            for future in futures:
                future.cancel()


async def _start_stream(
    state: ServerState, prepared: Prepared, deadline: Deadline
) -> tuple[Listener, list[Future[RowResult]], Event]:
    """Queue a stream's rows and wait for its first event, so that a request that is refused
    or times out before any token gets its HTTP error, as a non-stream request does."""
    listener = Listener(asyncio.get_running_loop())
    futures = _submit(state, prepared, listener)
    try:
        first = await deadline.wait(listener.next())
    except asyncio.TimeoutError:
        listener.abandon()
        for future in futures:
            future.cancel()
        raise deadline.error() from None
    if isinstance(first[1], BaseException):
        raise first[1]  # the batch failed: as a non-stream request's failure
    if not isinstance(first[1], str):
        _refuse_failures([first[1]])
    return listener, futures, first


def _gone(request: Request) -> Callable[[], Awaitable[None]]:
    """Returns when the client disconnects (its body was read: nothing else comes)."""

    async def wait() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    return wait


async def _serve(
    state: ServerState, request: Request, body: CompletionRequest | ChatRequest, chat: bool
) -> Response:
    started = time.perf_counter()
    deadline = Deadline(state)
    request_id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
    fields: dict[str, object] = {"id": request_id, "path": request.url.path, "model": body.model}

    def finished(reply: Reply, error: str | None) -> None:
        outcome = {"usage": reply.usage()} if error is None else {"error": error}
        seconds = round(time.perf_counter() - started, 4)
        state.log("request", **fields, status=200, **outcome, seconds=seconds)

    try:
        prepared = prepare(state, body)
        fields.update(
            profile=prepared.profile.name if prepared.profile else None,
            strength=prepared.strength,
            prompts=len(prepared.rows),
        )
        if body.stream:
            listener, futures, first = await _start_stream(state, prepared, deadline)
        else:
            results = await _complete(state, prepared, deadline, _gone(request))
    except _ClientGone:
        seconds = round(time.perf_counter() - started, 4)
        state.log("request", **fields, status=499, error="the client disconnected", seconds=seconds)
        return Response(status_code=499)  # nobody reads it: the connection is gone
    except ApiError as exc:
        state.log(
            "request",
            **fields,
            status=exc.status,
            error=state.public(exc.message),
            seconds=round(time.perf_counter() - started, 4),
        )
        return _error(exc, state)
    headers = steering_headers(prepared)
    if body.stream:
        reply = Reply(request_id, body.model, chat, prepared, [])
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        events = live_stream(
            reply, listener, futures, first, deadline, include_usage, _gone(request), finished
        )
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)
    reply = Reply(request_id, body.model, chat, prepared, results)
    finished(reply, None)
    return JSONResponse(reply_json(reply), headers=headers)


def _post_profile(state: ServerState, posted: PostedRecipe) -> Response:
    if not state.config.allow_post:
        return _error(
            ApiError(
                403,
                "posting recipes is off on this server (steer serve --allow-post turns it on)",
                kind="permission_error",
            )
        )
    size = len(posted.recipe.encode())
    if size > state.config.max_post_bytes:
        return _error(
            ApiError(
                413,
                f"recipe is {size} bytes, over this server's limit of "
                f"{state.config.max_post_bytes}",
            )
        )
    try:
        profile = state.store.add_posted(posted.name, posted.recipe)
    except RecipeError as exc:
        lines = [
            d.format().replace(f".posted-{posted.name}.yaml", f"{posted.name}.yaml")
            for d in exc.diagnostics
        ]
        return _error(ApiError(400, "invalid recipe:\n" + "\n".join(lines), param="recipe"), state)
    except PostRefused as exc:
        return _error(ApiError(403, str(exc), kind="permission_error", param="recipe"), state)
    except ValueError as exc:
        return _error(ApiError(409, str(exc), param="name"), state)
    return JSONResponse(
        {
            "id": f"{state.config.name}:{profile.name}",
            "object": "model",
            "vectors": profile.vector_hashes,
        },
        status_code=201,
    )


def create_app(state: ServerState) -> FastAPI:
    # The body's size, read time and encoding are checked before the app (serve/guard.py).
    app = FastAPI(title="steer serve", docs_url=None, redoc_url=None, openapi_url=None)
    add_tokenizer_routes(app, state)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        message, param = explain_invalid(exc.errors())
        return _error(ApiError(400, message, param=param))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        """404, 405 and the like, in OpenAI's shape too."""
        where = f"{request.method} {request.url.path}"
        headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
        allowed = headers.get("allow", "another method")
        messages = {
            404: f"no such route: {where} (routes: /v1/completions, /v1/chat/completions, "
            "/v1/models, /v1/models/MODEL, /health)",
            405: f"{where} is not allowed: use {allowed}",
        }
        message = messages.get(exc.status_code, f"{where}: {exc.detail}")
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        response = _error(ApiError(exc.status_code, message, kind=kind))
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.get("/health")
    async def health() -> dict[str, object]:
        return {
            "status": "ok",
            "model": state.config.name,
            "profiles": state.store.names(),
            "waiting": state.batcher.waiting,
        }

    def listed() -> list[str]:
        return [state.config.name] + [f"{state.config.name}:{p}" for p in state.store.names()]

    def model_card(name: str) -> dict[str, object]:
        return {"id": name, "object": "model", "created": 0, "owned_by": "steer"}

    @app.get("/v1/models")
    async def models() -> dict[str, object]:
        return {"object": "list", "data": [model_card(n) for n in listed()]}

    @app.get("/v1/models/{model:path}")
    async def model(model: str) -> Response:
        if model not in listed():
            return _error(
                ApiError(
                    404,
                    f"unknown model {model!r}: GET /v1/models lists this server's models",
                    kind="not_found_error",
                    param="model",
                    code="model_not_found",
                ),
                state,
            )
        return JSONResponse(model_card(model))

    @app.post("/v1/completions")
    async def completions(request: Request, body: CompletionRequest) -> Response:
        return await _serve(state, request, body, chat=False)

    @app.post("/v1/chat/completions")
    async def chat(request: Request, body: ChatRequest) -> Response:
        return await _serve(state, request, body, chat=True)

    @app.post("/v1/profiles")
    async def post_profile(posted: PostedRecipe) -> Response:
        # Compiling loads vectors (may run the model): off the event loop.
        return await asyncio.to_thread(_post_profile, state, posted)

    return app
