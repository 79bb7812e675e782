"""A stream as it is generated: server-sent events built from what a request's `Listener`
hears (serve/streams.py). Per choice: a first chunk at once, then its pieces as their tokens
are generated, then its finish reason the moment its row ends (not when its batch does); the
usage last when asked for. The text streamed is the text of the non-stream reply: a piece that
might begin a stop string is held back until the next says whether it does, and a row's end
sends whatever its final text has that was not sent (a character cut by the token limit).

A client that leaves, or a stream that runs past the request's timeout, abandons its rows: the
batcher skips those not started, and a generate call whose rows all gave up stops early.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future

from recipe_engine.serve.engine import RowResult
from recipe_engine.serve.responses import Reply, cut_at_stop, stream_chunk, usage_chunk
from recipe_engine.serve.streams import Event, Listener

__all__ = ["live_stream", "sendable_end"]


def _sse(data: dict[str, object]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def sendable_end(text: str, stops: list[str]) -> int:
    """How much of a row's text so far may go out: up to its first stop string, and never a
    tail that a stop string could begin with (the next token may complete it)."""
    cuts = [text.find(s) for s in stops if s in text]
    if cuts:
        return min(cuts)
    held = [k for s in stops for k in range(1, len(s)) if text.endswith(s[:k])]
    return len(text) - max(held, default=0)


class _Choices:
    """The chunks of each choice from the events heard, and the results at the end."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.heard = [""] * len(reply.prepared.rows)  # each row's text so far
        self.sent = [0] * len(reply.prepared.rows)  # how much of it went out
        self.results: dict[int, RowResult] = {}

    @property
    def done(self) -> bool:
        return len(self.results) == len(self.heard)

    def chunks(self, index: int, item: str | RowResult) -> list[dict[str, object]]:
        reply, sent = self.reply, self.sent[index]
        if isinstance(item, str):
            self.heard[index] += item
            end = sendable_end(self.heard[index], reply.prepared.stop)
            if end <= sent:
                return []
            self.sent[index] = end
            return [stream_chunk(reply, index, self.heard[index][sent:end], None)]
        self.results[index] = item
        choice = cut_at_stop(item, reply.prepared.stop)
        # What the reply has that was not sent (held back, or a character the token limit
        # cut). Sent text is the reply's prefix: pieces are its tokens' pieces (engine.py).
        rest = choice.text[sent:]
        out = [stream_chunk(reply, index, rest, None)] if rest else []
        return [*out, stream_chunk(reply, index, None, choice.finish_reason)]


def _error(message: str, kind: str) -> str:
    # What OpenAI sends when a stream fails after it started: its clients raise it.
    return _sse({"error": {"message": message, "type": kind, "param": None, "code": None}})


async def _watch(client_gone: Callable[[], Awaitable[None]]) -> Event | None:
    await client_gone()
    return None


async def _next_event(
    listener: Listener, gone: asyncio.Future[Event | None], left: float
) -> Event | None:
    """The listener's next event; None if the client left first; TimeoutError after `left` s.
    Watched here, not left to the server: a client that leaves while no chunk is being sent
    would otherwise be noticed only at the next chunk."""
    getting: asyncio.Future[Event | None] = asyncio.ensure_future(listener.next())
    done, _ = await asyncio.wait(
        {getting, gone}, timeout=max(left, 0.0), return_when=asyncio.FIRST_COMPLETED
    )
    if getting in done:
        return getting.result()
    getting.cancel()
    if gone in done:
        return None
    raise asyncio.TimeoutError


async def live_stream(
    reply: Reply,
    listener: Listener,
    futures: list[Future[RowResult]],
    first: Event,
    left_s: float,
    timeout_message: str,
    include_usage: bool,
    client_gone: Callable[[], Awaitable[None]],
    finished: Callable[[Reply, str | None], None],
) -> AsyncIterator[str]:
    """The events of `reply`'s stream, from its first event on; `finished(reply, error)` when
    it ends (error None: complete); `timeout_message` after `left_s` seconds. `client_gone`
    returns when the client disconnects."""
    choices = _Choices(reply)
    deadline = asyncio.get_running_loop().time() + left_s
    gone = asyncio.ensure_future(_watch(client_gone))
    logged = False

    def end(error: str | None) -> None:
        nonlocal logged
        logged = True
        finished(reply, error)

    try:
        for index in range(len(reply.prepared.rows)):
            yield _sse(stream_chunk(reply, index, "" if reply.chat else None, None, first=True))
        event: Event | None = first
        while not choices.done:
            if event is None:
                return  # the client left: `finally` says so
            index, item = event
            if isinstance(item, BaseException):
                end(f"{type(item).__name__}: {item}")
                yield _error(f"generation failed: {item}", "server_error")
                return
            for chunk in choices.chunks(index, item):
                yield _sse(chunk)
            if not choices.done:
                left = deadline - asyncio.get_running_loop().time()
                event = await _next_event(listener, gone, left)
        reply.results = [choices.results[i] for i in range(len(choices.heard))]
        end(None)  # logged first: a client that reads the log after its stream finds it
        if include_usage:
            yield _sse(usage_chunk(reply))
        yield "data: [DONE]\n\n"
    except asyncio.TimeoutError:
        end(timeout_message)
        yield _error(timeout_message, "timeout_error")
    finally:  # complete, failed, timed out, or the client left: nothing more is wanted
        gone.cancel()
        listener.abandon()
        for future in futures:
            future.cancel()
        if not logged:
            finished(reply, "the client disconnected")
