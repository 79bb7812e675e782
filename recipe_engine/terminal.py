"""Terminal helpers shared by subcommands and reports: colour only for a TTY, and never with
NO_COLOR; fixed-point numbers without a minus sign on zero."""

from __future__ import annotations

import math
import os
import sys
from typing import TextIO

__all__ = ["colour", "fixed", "use_colour"]

_CODES = {"red": "31", "yellow": "33", "green": "32", "bold": "1", "dim": "2"}


def use_colour(stream: TextIO = sys.stdout) -> bool:
    if "NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb":
        return False
    return bool(os.environ.get("FORCE_COLOR")) or stream.isatty()


def colour(text: str, name: str, enabled: bool) -> str:
    return f"\033[{_CODES[name]}m{text}\033[0m" if enabled else text


def fixed(value: float, digits: int = 4, *, signed: bool = False) -> str:
    """`value` with `digits` decimals, never `-0.0000`: a tiny negative number (or -0.0)
    rounds to zero, and a minus sign on zero reads as an effect that is not there."""
    text = f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    if math.isfinite(value) and float(text) == 0:
        text = text.replace("-", "+" if signed else "")
    return text
