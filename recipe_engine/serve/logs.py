"""Structured logs of `steer serve`: one JSON object per line on stderr (or any text stream),
so that `jq` or a log shipper reads them without parsing prose."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import TextIO

__all__ = ["JsonLog"]


class JsonLog:
    """log(event, **fields) writes {"ts": ..., "event": ..., **fields} as one line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._lock = threading.Lock()  # lines from the batcher, reload and request threads

    def __call__(self, event: str, **fields: object) -> None:
        record = {"ts": round(time.time(), 3), "event": event, **fields}
        line = json.dumps(record, default=str, ensure_ascii=False)
        with self._lock:
            stream = self.stream or sys.stderr
            stream.write(line + "\n")
            stream.flush()
