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
from pydantic import BaseModel, Field

from recipe_engine.errors import RecipeError
from recipe_engine.serve.batcher import QueueFull
from recipe_engine.serve.engine import RowResult
from recipe_engine.serve.live import live_stream
from recipe_engine.serve.profiles import PROFILE_NAME
from recipe_engine.serve.protocol import ChatRequest, CompletionRequest
from recipe_engine.serve.requests import ApiError, Prepared, prepare
from recipe_engine.serve.responses import Reply, reply_json, steering_headers
from recipe_engine.serve.state import ServerState
from recipe_engine.serve.streams import Event, Listener
from recipe_engine.serve.tokenizer_routes import add_tokenizer_routes

__all__ = ["create_app"]


class PostedRecipe(BaseModel):
    name: str = Field(pattern=PROFILE_NAME.pattern)
    recipe: str  # the YAML text


def _error(exc: ApiError) -> JSONResponse:
    body = {
        "error": {"message": exc.message, "type": exc.kind, "param": exc.param, "code": exc.code}
    }
    return JSONResponse(body, status_code=exc.status)


def _validation_message(exc: RequestValidationError) -> str:
    problems = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            return f"the request body is not valid JSON: {error.get('ctx', {}).get('error', '')}"
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        problems.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(problems)


def _submit(state: ServerState, prepared: Prepared, listener: Listener) -> list[Future[RowResult]]:
    try:
        return state.batcher.submit(prepared.rows, listener)
    except QueueFull:
        raise ApiError(
            429,
            f"the server is busy ({state.config.max_queue} prompts waiting): retry later",
            kind="rate_limit_error",
        ) from None


def _timed_out(state: ServerState) -> ApiError:
    return ApiError(
        504,
        f"no answer within {state.config.timeout_s} s (steer serve --timeout)",
        kind="timeout_error",
    )


class _ClientGone(Exception):
    """A non-stream client disconnected before its answer."""


async def _complete(
    state: ServerState, prepared: Prepared, client_gone: Callable[[], Awaitable[None]]
) -> list[RowResult]:
    """The rows' results; a client that leaves abandons its rows at once (the batcher skips
    those not started, a generate call of only abandoned rows stops at its next step)."""
    listener = Listener(None)  # results only; there to say when the request gives up
    futures = _submit(state, prepared, listener)
    answers: asyncio.Future[list[RowResult]] = asyncio.ensure_future(
        asyncio.gather(*[asyncio.wrap_future(f) for f in futures])
    )
    gone: asyncio.Future[None] = asyncio.ensure_future(client_gone())
    try:
        waiting: list[asyncio.Future[Any]] = [answers, gone]
        done, _ = await asyncio.wait(
            waiting, timeout=state.config.timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if answers in done:
            return list(answers.result())
        raise _ClientGone if gone in done else _timed_out(state)
    finally:
        gone.cancel()
        if not answers.done():
            answers.cancel()
            listener.abandon()
            for future in futures:
                future.cancel()


async def _start_stream(
    state: ServerState, prepared: Prepared
) -> tuple[Listener, list[Future[RowResult]], Event]:
    """Queue a stream's rows and wait for its first event, so that a request that is refused
    or times out before any token gets its HTTP error, as a non-stream request does."""
    listener = Listener(asyncio.get_running_loop())
    futures = _submit(state, prepared, listener)
    try:
        first = await asyncio.wait_for(listener.next(), state.config.timeout_s)
    except asyncio.TimeoutError:
        listener.abandon()
        for future in futures:
            future.cancel()
        raise _timed_out(state) from None
    if isinstance(first[1], BaseException):
        raise first[1]  # the batch failed: as a non-stream request's failure
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
            listener, futures, first = await _start_stream(state, prepared)
        else:
            results = await _complete(state, prepared, _gone(request))
    except _ClientGone:
        seconds = round(time.perf_counter() - started, 4)
        state.log("request", **fields, status=499, error="the client disconnected", seconds=seconds)
        return Response(status_code=499)  # nobody reads it: the connection is gone
    except ApiError as exc:
        state.log(
            "request",
            **fields,
            status=exc.status,
            error=exc.message,
            seconds=round(time.perf_counter() - started, 4),
        )
        return _error(exc)
    headers = steering_headers(prepared)
    if body.stream:
        reply = Reply(request_id, body.model, chat, prepared, [])
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        left = state.config.timeout_s - (time.perf_counter() - started)
        timeout = _timed_out(state).message
        events = live_stream(
            reply, listener, futures, first, left, timeout, include_usage, _gone(request), finished
        )
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)
    reply = Reply(request_id, body.model, chat, prepared, results)
    finished(reply, None)
    return JSONResponse(reply_json(reply), headers=headers)


def _limit_body(
    state: ServerState,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    async def middleware(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        limit = state.config.max_body_bytes
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return _error(
                ApiError(
                    413, f"request body is {length} bytes, over this server's limit of {limit}"
                )
            )
        return await call_next(request)

    return middleware


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
        return _error(ApiError(400, "invalid recipe:\n" + "\n".join(lines), param="recipe"))
    except ValueError as exc:
        return _error(ApiError(409, str(exc), param="name"))
    return JSONResponse(
        {
            "id": f"{state.config.name}:{profile.name}",
            "object": "model",
            "vectors": profile.vector_hashes,
        },
        status_code=201,
    )


def create_app(state: ServerState) -> FastAPI:
    app = FastAPI(title="steer serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.middleware("http")(_limit_body(state))
    add_tokenizer_routes(app, state)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return _error(ApiError(400, _validation_message(exc)))

    @app.get("/health")
    async def health() -> dict[str, object]:
        return {
            "status": "ok",
            "model": state.config.name,
            "profiles": state.store.names(),
            "waiting": state.batcher.waiting,
        }

    @app.get("/v1/models")
    async def models() -> dict[str, object]:
        names = [state.config.name] + [f"{state.config.name}:{p}" for p in state.store.names()]
        return {
            "object": "list",
            "data": [
                {"id": n, "object": "model", "created": 0, "owned_by": "steer"} for n in names
            ],
        }

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
