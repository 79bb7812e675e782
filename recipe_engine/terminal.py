"""Terminal helpers shared by subcommands: colour only for a TTY, and never with NO_COLOR."""

from __future__ import annotations

import os
import sys
from typing import TextIO

__all__ = ["colour", "use_colour"]

_CODES = {"red": "31", "yellow": "33", "green": "32", "bold": "1", "dim": "2"}


def use_colour(stream: TextIO = sys.stdout) -> bool:
    if "NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb":
        return False
    return bool(os.environ.get("FORCE_COLOR")) or stream.isatty()


def colour(text: str, name: str, enabled: bool) -> str:
    return f"\033[{_CODES[name]}m{text}\033[0m" if enabled else text
