"""The HTTP face of `steer serve` (FastAPI): the OpenAI routes, health, profiles, and errors in
OpenAI's shape ({"error": {"message", "type", "param", "code"}}) so that clients show them."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from recipe_engine.errors import RecipeError
from recipe_engine.serve.batcher import QueueFull
from recipe_engine.serve.engine import RowResult
from recipe_engine.serve.profiles import PROFILE_NAME
from recipe_engine.serve.protocol import ChatRequest, CompletionRequest
from recipe_engine.serve.requests import ApiError, Prepared, prepare
from recipe_engine.serve.responses import Reply, reply_chunks, reply_json, steering_headers
from recipe_engine.serve.state import ServerState

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


async def _complete(state: ServerState, prepared: Prepared) -> list[RowResult]:
    try:
        futures = state.batcher.submit(prepared.rows)
    except QueueFull:
        raise ApiError(
            429,
            f"the server is busy ({state.config.max_queue} prompts waiting): retry later",
            kind="rate_limit_error",
        ) from None
    waiting = [asyncio.wrap_future(f) for f in futures]
    try:
        return list(await asyncio.wait_for(asyncio.gather(*waiting), state.config.timeout_s))
    except asyncio.TimeoutError:  # wait_for cancels the rows: the batcher skips them
        raise ApiError(
            504,
            f"no answer within {state.config.timeout_s} s (steer serve --timeout)",
            kind="timeout_error",
        ) from None


async def _serve(
    state: ServerState, request: Request, body: CompletionRequest | ChatRequest, chat: bool
) -> Response:
    started = time.perf_counter()
    request_id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
    fields: dict[str, object] = {"id": request_id, "path": request.url.path, "model": body.model}
    try:
        prepared = prepare(state, body)
        fields.update(
            profile=prepared.profile.name if prepared.profile else None,
            strength=prepared.strength,
            prompts=len(prepared.rows),
        )
        results = await _complete(state, prepared)
    except ApiError as exc:
        state.log(
            "request",
            **fields,
            status=exc.status,
            error=exc.message,
            seconds=round(time.perf_counter() - started, 4),
        )
        return _error(exc)
    reply = Reply(request_id, body.model, chat, prepared, results)
    state.log(
        "request",
        **fields,
        status=200,
        usage=reply.usage(),
        seconds=round(time.perf_counter() - started, 4),
    )
    headers = steering_headers(prepared)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            _sse(reply, include_usage), media_type="text/event-stream", headers=headers
        )
    return JSONResponse(reply_json(reply), headers=headers)


async def _sse(reply: Reply, include_usage: bool) -> AsyncIterator[str]:
    for chunk in reply_chunks(reply, include_usage):
        yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
    yield "data: [DONE]\n\n"


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
