"""One recipe's `steer test` outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from recipe_engine.evaluate.expectations import ExpectationResult

__all__ = ["RecipeTestResult"]


@dataclass
class RecipeTestResult:
    """One recipe's test: its claims' results, or the error that stopped it (invalid recipe,
    lock mismatch, runtime failure), and the lock's differences."""

    path: Path
    display: str
    results: list[ExpectationResult] = field(default_factory=list)
    error: str | None = None
    lock_differences: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.error is None and all(r.passed for r in self.results)
