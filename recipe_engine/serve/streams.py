"""How a request hears its rows while their batch is still generating: one `Listener` per
request, shared by its rows. The batcher's worker thread sends each row's text pieces, then its
result (or the batch's failure); the request's coroutine reads them on the event loop.

The worker never blocks on a client: a send is handed to the loop (`call_soon_threadsafe`) and
queued there. A request that gave up (timeout, client gone) marks its listener abandoned; a
generate call whose rows are all finished or abandoned stops early (serve/engine.py).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from recipe_engine.serve.engine import RowResult

__all__ = ["Event", "Listener", "RowTap"]

# What a row sends: a piece of its text, its result (the row is done), or the batch's failure.
Event = tuple[int, str | RowResult | BaseException]


class Listener:
    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self._loop = loop  # None: the request wants its result only (not a stream)
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._abandoned = threading.Event()

    @property
    def live(self) -> bool:
        """Does the request read pieces as they come (a stream)?"""
        return self._loop is not None

    @property
    def abandoned(self) -> bool:
        return self._abandoned.is_set()

    def abandon(self) -> None:
        self._abandoned.set()

    def send(self, index: int, item: str | RowResult | BaseException) -> None:
        """From any thread. Nothing is queued for a result-only request."""
        if self._loop is None or self.abandoned:
            return
        try:
            self._loop.call_soon_threadsafe(self._events.put_nowait, (index, item))
        except RuntimeError:  # the loop is closed: the server is shutting down
            self.abandon()

    async def next(self) -> Event:
        return await self._events.get()


@dataclass(frozen=True)
class RowTap:
    """Row `index` of the request `listener` listens to."""

    listener: Listener
    index: int

    @property
    def live(self) -> bool:
        return self.listener.live

    @property
    def abandoned(self) -> bool:
        return self.listener.abandoned

    def piece(self, text: str) -> None:
        self.listener.send(self.index, text)

    def done(self, result: RowResult) -> None:
        self.listener.send(self.index, result)

    def fail(self, error: BaseException) -> None:
        self.listener.send(self.index, error)
