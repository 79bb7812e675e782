"""Requests that arrive together are completed together: a bounded queue of rows and one worker
thread that takes whatever is waiting (up to max_batch rows) and hands it to `execute_batch`.

The queue's bound is the back-pressure: a row that finds it full is refused at once (HTTP 429)
instead of waiting behind work the server cannot finish in time. A row whose request gave up
(its timeout passed, the client left) is cancelled and skipped if it has not started; once
started, its generate call stops early when every row of it has given up or ended.

A batch that fails (one row's bad seed, one profile's NaN/Inf) is retried row by row, so the
failure reaches only the rows that cause it; a row that already streamed text is not retried
(its client heard part of the failed attempt) and gets the failure.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

from recipe_engine.resolve.loaded_model import LoadedModel
from recipe_engine.serve.engine import Row, RowResult, execute_batch, pass_groups
from recipe_engine.serve.logs import JsonLog
from recipe_engine.serve.streams import Listener, RowTap

__all__ = ["Batcher", "QueueFull"]


class QueueFull(Exception):
    """The queue holds max_queue rows already."""


@dataclass
class _Pending:
    row: Row
    future: Future[RowResult]
    tap: RowTap | None  # who hears the row as it is generated


class _Heard:
    """A row's tap that remembers whether it sent anything (a failed batch's rows that sent
    nothing may be retried on their own)."""

    def __init__(self, tap: RowTap | None) -> None:
        self.tap, self.sent = tap, False

    @property
    def live(self) -> bool:
        return self.tap is not None and self.tap.live

    @property
    def abandoned(self) -> bool:
        return self.tap is not None and self.tap.abandoned

    def piece(self, text: str) -> None:
        self.sent = True
        if self.tap is not None:
            self.tap.piece(text)

    def done(self, result: RowResult) -> None:
        self.sent = True
        if self.tap is not None:
            self.tap.done(result)


def _profiles(rows: list[Row]) -> list[str]:
    """The profiles a batch served ("" for unsteered rows), for the log."""
    return sorted({"" if row.profile is None else row.profile.name for row in rows})


class Batcher:
    def __init__(
        self, model: LoadedModel, log: JsonLog, *, max_queue: int, max_batch: int, wait_s: float
    ) -> None:
        self.model = model
        self.log = log
        self.max_batch = max_batch
        self.wait_s = wait_s  # how long the first row of a batch waits for company
        self._queue: queue.Queue[_Pending] = queue.Queue(maxsize=max_queue)
        self.batches_started = 0  # for tests and /health: batches handed to execute_batch
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="steer-serve-batcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def submit(self, rows: list[Row], listener: Listener | None = None) -> list[Future[RowResult]]:
        """Queue rows; QueueFull (none queued) if they do not all fit. `listener` hears them
        as they are generated (serve/streams.py)."""
        pending = [
            _Pending(row, Future(), None if listener is None else RowTap(listener, index))
            for index, row in enumerate(rows)
        ]
        with self._queue.mutex:  # all of a request's rows, or none
            full = self._queue.maxsize - len(self._queue.queue) < len(pending)
        if full:
            raise QueueFull
        for item in pending:
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                for queued in pending:
                    queued.future.cancel()  # the worker skips them
                raise QueueFull from None
        return [item.future for item in pending]

    def _collect(self) -> list[_Pending]:
        try:
            batch = [self._queue.get(timeout=0.1)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.wait_s
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                batch.append(
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
        return [item for item in batch if item.future.set_running_or_notify_cancel()]

    def _loop(self) -> None:
        while not self._stop.is_set():
            batch = self._collect()
            if not batch:
                continue
            started = time.perf_counter()
            self.batches_started += 1
            rows = [item.row for item in batch]
            heard = [_Heard(item.tap) for item in batch]
            try:
                results = execute_batch(self.model, rows, heard)
            except Exception as exc:
                self.log("batch_failed", rows=len(batch), error=f"{type(exc).__name__}: {exc}")
                self._one_by_one(batch, heard, exc)
                continue
            # Logged before the answers go out: a client that reads the log after its answer
            # finds its batch there.
            elapsed = round(time.perf_counter() - started, 4)
            self.log(
                "batch",
                rows=len(batch),
                passes=len(pass_groups(self.model, rows)),  # generate passes it took
                profiles=_profiles(rows),
                seconds=elapsed,
                waiting=self.waiting,
            )
            for item, result in zip(batch, results, strict=True):
                item.future.set_result(result)

    def _one_by_one(self, batch: list[_Pending], heard: list[_Heard], error: Exception) -> None:
        """A failed batch's rows, each on its own: the rows that fail alone get their own
        failure, the others their answer."""
        for item, tap in zip(batch, heard, strict=True):
            failure: Exception = error
            if not tap.sent and len(batch) > 1:
                try:
                    result = execute_batch(self.model, [item.row], [tap])
                except Exception as exc:
                    failure = exc
                    self.log("row_failed", error=f"{type(exc).__name__}: {exc}")
                else:
                    item.future.set_result(result[0])
                    continue
            item.future.set_exception(failure)
            if item.tap is not None:
                item.tap.fail(failure)
