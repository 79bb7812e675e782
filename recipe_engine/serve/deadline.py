"""When a request must end: its own `--timeout` from its arrival, or sooner, the end of the
server's drain once SIGTERM began one (`--drain-timeout`). Waits are cut into short slices, so
a drain that begins while a request waits is noticed within `POLL_S`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

from recipe_engine.serve.requests import ApiError
from recipe_engine.serve.state import ServerState

__all__ = ["POLL_S", "Deadline"]

POLL_S = 0.2
T = TypeVar("T")


@dataclass
class Deadline:
    state: ServerState
    started: float = field(default_factory=time.monotonic)

    def _end(self) -> tuple[float, bool]:
        """(when, whether it is the drain's end)."""
        own = self.started + self.state.config.timeout_s
        drain = self.state.drain_deadline
        if drain is not None and drain < own:
            return drain, True
        return own, False

    def left(self) -> float:
        return self._end()[0] - time.monotonic()

    def error(self) -> ApiError:
        config = self.state.config
        if self._end()[1]:
            return ApiError(
                503,
                f"the server is shutting down and its drain of {config.drain_s:g} s ended "
                "before this request did (steer serve --drain-timeout): retry on another "
                "server, or once it is back",
                kind="server_error",
                code="server_shutting_down",
            )
        return ApiError(
            504,
            f"no answer within {config.timeout_s} s (steer serve --timeout)",
            kind="timeout_error",
        )

    async def wait(self, future: asyncio.Future[T] | Awaitable[T]) -> T:
        """`future`'s result; asyncio.TimeoutError (the future cancelled) when the deadline
        passes first."""
        task = asyncio.ensure_future(future)
        while True:
            left = self.left()
            if left <= 0:
                task.cancel()
                raise asyncio.TimeoutError
            done, _ = await asyncio.wait({task}, timeout=min(left, POLL_S))
            if done:
                return task.result()
