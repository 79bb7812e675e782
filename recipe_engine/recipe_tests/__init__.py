"""`steer test`: run every recipe that carries `expect:` and check its claims.

    run_recipe_tests(paths) -> [RecipeTestResult]    one per recipe with expect:, in path order
    junit_xml(results) -> str                       JUnit XML (a test suite per recipe)
    changed_files(ref, cwd) / recipe_inputs(...)    --changed-since: what git says changed

Models and extracted vectors come from the process and disk caches (resolve/, vectors/cache.py):
recipes on one model load it once, and a vector built before is not rebuilt.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

from recipe_engine.errors import RecipeEngineError, RecipeError
from recipe_engine.evaluate.expectations import check_expectations
from recipe_engine.load.paths import display_path
from recipe_engine.lock import check_lock, write_lock
from recipe_engine.pipeline import load_recipe, run_recipe
from recipe_engine.recipe_tests.changes import changed_files, recipe_inputs
from recipe_engine.recipe_tests.junit import junit_xml
from recipe_engine.recipe_tests.result import RecipeTestResult

__all__ = [
    "RecipeTestResult",
    "changed_files",
    "find_recipe_files",
    "junit_xml",
    "recipe_inputs",
    "run_recipe_tests",
]


def find_recipe_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files named, and every *.yaml/*.yml below a folder named (names starting with "_"
    or "." skipped, as `steer validate` does). FileNotFoundError for a missing path."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.suffix in (".yaml", ".yml")
                and p.is_file()
                and not any(part.startswith(("_", ".")) for part in p.relative_to(path).parts)
            )
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(str(raw))
    return found


def _has_expect(path: Path) -> bool:
    """Cheap pre-filter: a top-level `expect:` key (a fragment can supply one too, caught when
    the recipe is loaded)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return True  # let loading report it
    return any(line.startswith(("expect:", "include:")) for line in text.splitlines())


def run_recipe_tests(
    paths: Iterable[str | Path],
    *,
    changed_since: str | None = None,
    overrides: list[str] | None = None,
    allow_outside_root: bool = False,
    update_lock: bool = False,
    on_result: Callable[[RecipeTestResult], None] | None = None,
) -> list[RecipeTestResult]:
    """Run every recipe under `paths` that has `expect:` and check each claim. `changed_since`
    (a git ref): only recipes whose file, includes, data files or vector files changed since
    it. A recipe with a RECIPE.lock next to it is checked against the lock first (a mismatch
    fails it without running; `update_lock` rewrites the lock instead)."""
    files = find_recipe_files(paths)
    changed = None
    if changed_since is not None and files:
        changed = changed_files(changed_since, files[0].parent)
    out = []
    for path in files:
        if not _has_expect(path):
            continue
        started = time.perf_counter()
        result = RecipeTestResult(path, display_path(path))
        try:
            loaded = load_recipe(path, overrides=overrides, allow_outside_root=allow_outside_root)
        except RecipeError as exc:
            result.error = "; ".join(d.format() for d in exc.diagnostics)
            out.append(_done(result, started, on_result))
            continue
        recipe, doc = loaded.recipe, loaded.document
        if not recipe.expect:
            continue
        if changed is not None and not (recipe_inputs(recipe, doc) & changed):
            continue
        if update_lock:
            write_lock(recipe, doc)
        else:
            differences = check_lock(recipe, doc)
            if differences:
                result.lock_differences = differences
                result.error = "the lock does not match (steer lock --update-lock rewrites it)"
                out.append(_done(result, started, on_result))
                continue
        try:
            report = run_recipe(loaded)
        except RecipeError as exc:
            result.error = "; ".join(d.format() for d in exc.diagnostics)
        except RecipeEngineError as exc:
            result.error = str(exc)
        else:
            result.results = check_expectations(report, recipe, doc)
        out.append(_done(result, started, on_result))
    return out


def _done(
    result: RecipeTestResult,
    started: float,
    on_result: Callable[[RecipeTestResult], None] | None,
) -> RecipeTestResult:
    result.seconds = time.perf_counter() - started
    if on_result is not None:
        on_result(result)
    return result
