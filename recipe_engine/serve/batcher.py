"""Requests that arrive together are completed together: a bounded queue of rows and one worker
thread that takes whatever is waiting (up to max_batch rows) as one batch (`batch_job`).

Scheduling is at step granularity: a request that arrives while a batch generates does not wait
for its end. The running batch pauses at its next step (its generate call stops between two
steps and keeps its KV cache: execute/pausing.py `Paused`) and the newcomer's batch starts; the
started batches then take turns, each running `slice_steps` steps while others wait, a
newcomer first (counted in steps, not seconds: a short request finishes in its first turn
however slow the steps are). Going on is the step the call would have run next, so every
row's tokens are those of its batch run uninterrupted, each row with its own plan. At most
`max_jobs` batches are started at once (each holds its cache); rows that come meanwhile wait
in the queue and start together when one ends.

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
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

from recipe_engine.resolve.loaded_model import LoadedModel
from recipe_engine.serve.engine import Job, Row, RowResult, batch_job, execute_batch, pass_groups
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


@dataclass
class _Job:
    """A started batch: its rows, their taps, and its work (`batch_job`) between two slices."""

    batch: list[_Pending]
    heard: list[_Heard]
    work: Job
    started: float = field(default_factory=time.perf_counter)
    slices: int = 0  # how many turns it took (1: it never paused)


def _profiles(rows: list[Row]) -> list[str]:
    """The profiles a batch served ("" for unsteered rows), for the log."""
    return sorted({"" if row.profile is None else row.profile.name for row in rows})


class Batcher:
    def __init__(
        self,
        model: LoadedModel,
        log: JsonLog,
        *,
        max_queue: int,
        max_batch: int,
        wait_s: float,
        slice_steps: int = 16,
        max_jobs: int = 2,
    ) -> None:
        self.model = model
        self.log = log
        self.max_batch = max_batch
        self.wait_s = wait_s  # how long the first row of a batch waits for company
        self.slice_steps = slice_steps  # a started batch's turn while others wait
        self.max_jobs = max_jobs  # batches started at once
        self._queue: queue.Queue[_Pending] = queue.Queue(maxsize=max_queue)
        self.batches_started = 0  # for tests and /health: batches started (`batch_job`)
        self._ready: deque[_Job] = deque()  # started batches waiting for their next turn
        self._turn_steps = 0  # steps the running batch took in this turn
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

    def _collect(self, block: bool) -> list[_Pending]:
        try:
            batch = [self._queue.get(timeout=0.1) if block else self._queue.get_nowait()]
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

    def _pause(self) -> bool:
        """Asked between two steps of the running batch: should it pause for other work? For
        rows that wait in the queue at once (when another batch may start); for a started
        batch once this turn has lasted `slice_steps` steps."""
        self._turn_steps += 1  # asked once per step
        if self._queue.qsize() and 1 + len(self._ready) < self.max_jobs:
            return True
        return bool(self._ready) and self._turn_steps >= self.slice_steps

    def _next(self) -> _Job | None:
        """The batch whose turn it is: new rows first (while fewer than max_jobs batches are
        started), else the started batch that waited longest."""
        if not self._ready or (self._queue.qsize() and len(self._ready) < self.max_jobs):
            batch = self._collect(block=not self._ready)
            if batch:
                self.batches_started += 1
                rows = [item.row for item in batch]
                heard = [_Heard(item.tap) for item in batch]
                return _Job(batch, heard, batch_job(self.model, rows, heard, self._pause))
        return self._ready.popleft() if self._ready else None

    def _loop(self) -> None:
        while not self._stop.is_set():
            job = self._next()
            if job is not None:
                self._turn(job)
        for job in self._ready:  # stopped with batches started: their requests get an error
            job.work.close()
            for item in job.batch:
                if not item.future.done():
                    item.future.set_exception(RuntimeError("the server stopped"))

    def _turn(self, job: _Job) -> None:
        """Run one slice of a started batch: to its end, or to a pause (back in line)."""
        self._turn_steps = 0
        job.slices += 1
        try:
            next(job.work)
        except StopIteration as done:
            self._finish(job, done.value)
            return
        except Exception as exc:
            self.log("batch_failed", rows=len(job.batch), error=f"{type(exc).__name__}: {exc}")
            self._one_by_one(job.batch, job.heard, exc)
            return
        self._ready.append(job)

    def _finish(self, job: _Job, results: list[RowResult]) -> None:
        # Logged before the answers go out: a client that reads the log after its answer
        # finds its batch there.
        rows = [item.row for item in job.batch]
        self.log(
            "batch",
            rows=len(job.batch),
            passes=len(pass_groups(self.model, rows)),  # generate passes it took
            profiles=_profiles(rows),
            seconds=round(time.perf_counter() - job.started, 4),
            slices=job.slices,  # turns it took: more than 1 when it paused for other work
            waiting=self.waiting,
        )
        for item, result in zip(job.batch, results, strict=True):
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
