"""What stands between the network and the app, so that no client can hold the server's memory
or connections: a cap on open connections, a time limit on a request's headers and on its body,
and a body size limit that holds whatever the framing (Content-Length or chunked).

uvicorn alone has none of the first three (its keep-alive timeout starts only after a first
response: a connection that sends half its headers, or half its body, stays open for ever), and
FastAPI reads a chunked body whole before anything looks at its size. Here:

- `guarded_protocol` is uvicorn's h11 protocol with a connection cap (past it, a new connection
  gets a 503 in OpenAI's shape and is closed at once) and a header deadline (a connection whose
  request headers are not complete `read_timeout_s` after it opened, or after its previous
  response, is closed).
- `BodyGuard` (ASGI) reads each request's body before the app sees it: 413 the moment it passes
  `max_body_bytes` (the rest is never read), 408 when it is not complete within
  `read_timeout_s`, 400 when it is not UTF-8. The app then gets the body in one message.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["BodyGuard", "error_bytes", "guarded_protocol"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def error_bytes(
    message: str, kind: str = "invalid_request_error", code: str | None = None
) -> bytes:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return json.dumps(body).encode()


class _Refused(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


class BodyGuard:
    def __init__(self, app: App, *, max_body_bytes: int, read_timeout_s: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read(scope, receive)
        except _Refused as refused:
            await _answer(send, refused)
            return
        if body is None:
            return  # the client left before its body was complete
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # then only the disconnect is left to hear

        await self.app(scope, replay, send)

    async def _read(self, scope: Scope, receive: Receive) -> bytes | None:
        limit = self.max_body_bytes
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length", b"").decode("latin-1")
        if length.isdigit() and int(length) > limit:
            raise _Refused(
                413,
                f"request body is {length} bytes, over this server's limit of {limit}: "
                "send a smaller one",
            )
        chunks: list[bytes] = []
        size = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.read_timeout_s
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
            except asyncio.TimeoutError:
                raise _Refused(
                    408,
                    f"the request body was not complete within {self.read_timeout_s:g} s "
                    "(steer serve --read-timeout): send it whole",
                    "timeout_error",
                ) from None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _Refused(
                    413,
                    f"request body is over this server's limit of {limit} bytes: "
                    "send a smaller one",
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Refused(
                400,
                f"the request body is not UTF-8 (byte {exc.start}): send UTF-8 JSON",
            ) from None
        return body


async def _answer(send: Send, refused: _Refused) -> None:
    payload = error_bytes(refused.message, refused.kind)
    await send(
        {
            "type": "http.response.start",
            "status": refused.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),  # what is left of its body is never read
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


_BUSY = error_bytes(
    "the server has too many open connections (steer serve --max-connections): retry later",
    "rate_limit_error",
)
_BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: " + str(len(_BUSY)).encode() + b"\r\n\r\n" + _BUSY
)


def guarded_protocol(max_connections: int, read_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with a connection cap and a header deadline (module docstring)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                transport.write(_BUSY_RESPONSE)
                transport.close()
                return
            self._arm()

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(read_timeout_s, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            before = self.cycle
            super().data_received(data)
            if self.cycle is not before:  # a request's headers are complete
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            waiting = self.cycle is not None and self.cycle.response_complete
            if waiting and not self.transport.is_closing():  # for the next request's headers
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedH11Protocol
