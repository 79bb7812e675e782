"""The exception hierarchy of the engine, in one place.

    RecipeEngineError                 every error the engine raises on purpose
    ├── RecipeError                   the recipe is wrong; carries Diagnostics   -> exit 1
    │   └── RecipeLoadError           the file cannot be read as a recipe (YAML, encoding, include)
    ├── UsageError                    the command line is wrong                  -> exit 2
    ├── EnvironmentFailure            the machine cannot do it (model not cached, I/O)  -> exit 3
    └── NumericalFailure              the steered model's numbers broke (NaN/Inf)       -> exit 3

User input never trips an `assert`: each problem becomes a Diagnostic with a stable code, a file,
a line, a column and a JSON pointer, and all of them are reported together.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from recipe_engine.diagnostics import Diagnostic

__all__ = [
    "EnvironmentFailure",
    "NumericalFailure",
    "RecipeEngineError",
    "RecipeError",
    "RecipeLoadError",
    "UsageError",
]


class RecipeEngineError(Exception):
    """Base class: anything the engine raises deliberately."""

    exit_code = 3


class RecipeError(RecipeEngineError):
    """The recipe is invalid. `diagnostics` holds every problem found, not only the first."""

    exit_code = 1

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        first = diagnostics[0].format() if diagnostics else "invalid recipe"
        more = f" (and {len(diagnostics) - 1} more)" if len(diagnostics) > 1 else ""
        super().__init__(first + more)


class RecipeLoadError(RecipeError):
    """The file could not be turned into a document at all (encoding, YAML syntax, include)."""


class UsageError(RecipeEngineError):
    """The command line or API call is wrong (bad flag value, path that does not exist)."""

    exit_code = 2


class EnvironmentFailure(RecipeEngineError):
    """The environment cannot satisfy a valid recipe: a model not in the local cache, I/O errors."""

    exit_code = 3


class NumericalFailure(RecipeEngineError):
    """A valid recipe drove the model to NaN/Inf (a strength or vector far too large, an
    overflowing dtype). The message is one line naming the likely cause and what to change."""

    exit_code = 3
