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

from recipe_engine.serve.deadline import POLL_S, Deadline
from recipe_engine.serve.engine import RowResult
from recipe_engine.serve.responses import Reply, cut_at_stop, stream_chunk, usage_chunk
from recipe_engine.serve.streams import Event, Listener

__all__ = ["live_stream", "sendable_end"]


def _sse(data: dict[str, object]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def _overlap(text: str, stop: str) -> int:
    """The longest k < len(stop) with text.endswith(stop[:k]): the tail a stop string could
    begin with. Linear in len(stop) (the prefix function of stop, then of the tail, as in
    Knuth-Morris-Pratt), where trying every k was quadratic on every token."""
    pattern = stop[:-1]
    if not pattern or not text:
        return 0
    fail = [0] * len(pattern)
    k = 0
    for i in range(1, len(pattern)):
        while k and pattern[i] != pattern[k]:
            k = fail[k - 1]
        if pattern[i] == pattern[k]:
            k += 1
        fail[i] = k
    k = 0
    for char in text[-len(pattern) :]:
        if k == len(pattern):  # matched whole with characters still to come: fall back
            k = fail[k - 1]
        while k and char != pattern[k]:
            k = fail[k - 1]
        if char == pattern[k]:
            k += 1
    return k


def sendable_end(text: str, stops: list[str], searched: int = 0) -> int:
    """How much of a row's text so far may go out: up to its first stop string, and never a
    tail that a stop string could begin with (the next token may complete it). `searched`:
    how much of `text` was already known to hold no stop string (the text sent so far), so
    each token costs the length of the stop strings, not of the whole text."""
    cuts = []
    for stop in stops:
        at = text.find(stop, max(searched - len(stop) + 1, 0))
        if at >= 0:
            cuts.append(at)
    if cuts:
        return min(cuts)
    return len(text) - max((_overlap(text, s) for s in stops), default=0)


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
            end = sendable_end(self.heard[index], reply.prepared.stop, sent)
            if end <= sent:
                return []
            self.sent[index] = end
            return [stream_chunk(reply, index, self.heard[index][sent:end], None)]
        self.results[index] = item
        # A stop string seen within min_tokens held the text back: it goes out now.
        choice = cut_at_stop(
            item, reply.prepared.stop, reply.prepared.rows[index].generation.min_new_tokens
        )
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
    listener: Listener, gone: asyncio.Future[Event | None], deadline: Deadline
) -> Event | None:
    """The listener's next event; None if the client left first; TimeoutError when the
    deadline passes (the request's timeout, or a drain's end: checked every POLL_S). Watched
    here, not left to the server: a client that leaves while no chunk is being sent would
    otherwise be noticed only at the next chunk."""
    getting: asyncio.Future[Event | None] = asyncio.ensure_future(listener.next())
    while True:
        left = deadline.left()
        if left <= 0:
            getting.cancel()
            raise asyncio.TimeoutError
        done, _ = await asyncio.wait(
            {getting, gone}, timeout=min(left, POLL_S), return_when=asyncio.FIRST_COMPLETED
        )
        if getting in done:
            return getting.result()
        if gone in done:
            getting.cancel()
            return None


async def live_stream(
    reply: Reply,
    listener: Listener,
    futures: list[Future[RowResult]],
    first: Event,
    deadline: Deadline,
    include_usage: bool,
    client_gone: Callable[[], Awaitable[None]],
    finished: Callable[[Reply, str | None], None],
) -> AsyncIterator[str]:
    """The events of `reply`'s stream, from its first event on; `finished(reply, error)` when
    it ends (error None: complete); an error event when `deadline` passes (its timeout, or
    a drain's end). `client_gone` returns when the client disconnects."""
    choices = _Choices(reply)
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
            if not isinstance(item, str) and item.failure is not None:  # NaN/Inf logits
                end(item.failure)
                yield _error(item.failure, "server_error")
                return
            for chunk in choices.chunks(index, item):
                yield _sse(chunk)
            if not choices.done:
                event = await _next_event(listener, gone, deadline)
        reply.results = [choices.results[i] for i in range(len(choices.heard))]
        end(None)  # logged first: a client that reads the log after its stream finds it
        if include_usage:
            yield _sse(usage_chunk(reply))
        yield "data: [DONE]\n\n"
    except asyncio.TimeoutError:
        cut = deadline.error()
        end(cut.message)
        yield _error(cut.message, cut.kind)
    finally:  # complete, failed, timed out, or the client left: nothing more is wanted
        gone.cancel()
        listener.abandon()
        for future in futures:
            future.cancel()
        if not logged:
            finished(reply, "the client disconnected")
