"""An argument parser whose errors suggest the flag or command that was probably meant.

argparse (before Python 3.14) says `unrecognized arguments: --kl-budgt` and stops there. The
top-level parser reports unknown flags for every subcommand, so it remembers the command line
and looks the suggestion up among the options of the (sub)command that was actually typed.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from recipe_engine.diagnostics import closest

__all__ = ["SteerArgumentParser"]

_UNRECOGNIZED = "unrecognized arguments: "
_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)")


class SteerArgumentParser(argparse.ArgumentParser):
    _argv: list[str]

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._argv = list(args) if args is not None else sys.argv[1:]
        return super().parse_known_args(args, namespace)

    def _typed_parsers(self) -> list[argparse.ArgumentParser]:
        """This parser and the subcommand parsers the remembered command line went into."""
        chain: list[argparse.ArgumentParser] = [self]
        for word in getattr(self, "_argv", []):
            for action in chain[-1]._actions:
                if isinstance(action, argparse._SubParsersAction) and word in action.choices:
                    chain.append(action.choices[word])
                    break
        return chain

    def _with_suggestions(self, message: str) -> str:
        if message.startswith(_UNRECOGNIZED):
            options = [
                option
                for parser in self._typed_parsers()
                for action in parser._actions
                for option in action.option_strings
                if option.startswith("--")
            ]
            hints: list[tuple[str, str]] = []
            for word in message[len(_UNRECOGNIZED) :].split():
                flag = word.split("=", 1)[0]
                if flag.startswith("--"):
                    match = closest(flag, options)
                    if match:
                        hints.append((flag, match))
            if len(hints) == 1:
                message += f"; did you mean {hints[0][1]}?"
            elif hints:
                message += "; did you mean " + ", ".join(f"{m} (for {f})" for f, m in hints) + "?"
        choice = _INVALID_CHOICE.search(message)
        if choice:
            options = [c.strip().strip("'") for c in choice.group(2).split(",")]
            match = closest(choice.group(1), options)
            if match:
                message += f"; did you mean {match!r}?"
        return message

    def error(self, message: str) -> NoReturn:
        super().error(self._with_suggestions(message))
