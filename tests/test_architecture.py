"""The layout holds: no import cycle, each stage imports only the stages before it, the CLI
stands on the public API alone, and no function or module outgrows a reader.

Imports are read from the source (ast), all of them: module level, inside functions (lazy
imports still tie modules together) and under `if TYPE_CHECKING:` (a type named from a later
stage is a dependency on it). One exception, the package root `recipe_engine`: a lazy facade
(PEP 562) that imports no submodule at run time (checked below), so `from recipe_engine import
__version__` reads a constant and is no edge.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import recipe_engine
import recipe_engine.api

PACKAGE = Path(recipe_engine.__file__).parent
ROOT = "recipe_engine"

# The data flow, in order (README, Architecture). A module may import its own stage and the
# stages before it, never a later one.
STAGES: list[tuple[str, ...]] = [
    # torch-free helpers every stage may use
    ("errors", "diagnostics", "atomic", "terminal", "builtin_models", "model_config", "expr"),
    ("model_store",),  # where a model may come from: reads model_config
    ("version", "extras"),  # the version constant; the run extra's presence check
    ("load",),
    ("format",),
    ("validate",),
    ("examples",),  # the shipped example recipes, copied with what they read
    ("resolve",),
    ("vectors",),
    ("plan", "compiler"),
    ("execute",),
    ("report",),
    ("training",),  # trains the embedded model offline; reads report/metrics
    ("evaluate",),  # judges, prompting, random controls, the evaluation table
    ("learned",),  # steering vectors trained by gradient through compiled plans (kind: trained;
    # after evaluate: prompted targets are the prompting side's answers)
    ("pipeline",),
    ("lock",),  # RECIPE.lock: hashes of a recipe's inputs (torch-free)
    ("recipe_tests",),  # steer test: runs recipes with expect: through the pipeline
    ("sweep", "eval_runs"),  # eval_runs: steer eval's driver over pipeline.py
    ("export",),  # bakes a compiled recipe into weights / a llama.cpp control vector
    ("serve",),  # the OpenAI-compatible HTTP server (steer serve): compiled profiles, batching
    ("api",),
    ("cli", "__main__"),
]

# What cli/* may import besides recipe_engine.api and recipe_engine.cli.*: the package root
# (__version__) and torch-free front modules the API does not wrap: exit-code errors, one-line
# diagnostics, atomic writes and Ctrl-C holding, terminal colour, the version and the check that
# the run extra is installed (it must run before the API touches torch).
CLI_MAY_IMPORT = {
    ROOT,
    "recipe_engine.api",
    "recipe_engine.errors",
    "recipe_engine.diagnostics",
    "recipe_engine.atomic",
    "recipe_engine.terminal",
    "recipe_engine.version",
    "recipe_engine.extras",
}

MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 400
# A module over MAX_MODULE_LINES says why in a comment at its top starting with this.
LONG_MODULE_MARK = "# Over 400 lines:"


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = [ROOT, *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str:
    """The most specific module of the package that `name` lies in."""
    while name not in MODULES:
        name = name.rsplit(".", 1)[0]
    return name


def _imports(path: Path) -> set[str]:
    """Every recipe_engine module this file imports, wherever the import statement is."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import mod` imports the module pkg.mod; `from mod import name`, mod
            names = [
                f"{node.module}.{alias.name}"
                if f"{node.module}.{alias.name}" in MODULES
                else node.module
                for alias in node.names
            ]
        else:
            continue
        found.update(_resolve(n) for n in names if n == ROOT or n.startswith(ROOT + "."))
    return found


GRAPH = {name: _imports(path) - {name, ROOT} for name, path in MODULES.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules, first repeated at the end), or None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def _stage(module: str) -> int:
    first = module.removeprefix(ROOT + ".").split(".")[0]
    for rank, names in enumerate(STAGES):
        if first in names:
            return rank
    raise AssertionError(f"{module} is in no stage: add its folder to STAGES (and the README)")


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_import_reader_sees_lazy_and_type_only_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from recipe_engine.plan import Plan\n"
        "def f():\n"
        "    from recipe_engine import errors\n"
        "    import recipe_engine.execute.steer\n",
        encoding="utf-8",
    )
    assert _imports(source) == {
        "recipe_engine.plan",
        "recipe_engine.errors",
        "recipe_engine.execute.steer",
    }


def test_no_import_cycle() -> None:
    cycle = _cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_package_root_imports_no_submodule_at_run_time() -> None:
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:  # top level only: the TYPE_CHECKING block is skipped by design
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith(ROOT):
                pytest.fail(f"recipe_engine/__init__.py imports {inner.module} at run time")


@pytest.mark.parametrize("module", sorted(set(GRAPH) - {ROOT}))  # the root: the API's facade
def test_each_stage_imports_only_earlier_stages(module: str) -> None:
    later = sorted(dep for dep in GRAPH[module] if _stage(dep) > _stage(module))
    assert not later, f"{module} imports a later stage: {', '.join(later)}"


def test_the_cli_names_only_the_public_api() -> None:
    offending = {
        module: sorted(
            dep
            for dep in deps
            if dep not in CLI_MAY_IMPORT and not dep.startswith("recipe_engine.cli")
        )
        for module, deps in GRAPH.items()
        if module.startswith("recipe_engine.cli")
    }
    offending = {module: deps for module, deps in offending.items() if deps}
    assert not offending, f"cli modules importing below recipe_engine.api: {offending}"


# What runs the model. report/ measures what execute/passes.py computed and calls none of it.
PASS_RUNNERS = {
    "trace_pass",
    "generate_pass",
    "text_logits",
    "score_texts",
    "vllm_pass",
    "run_pass",
    "run_passes",
}


def test_report_only_measures() -> None:
    for module, path in MODULES.items():
        if not module.startswith("recipe_engine.report"):
            continue
        names = {
            alias.name
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.ImportFrom)
            for alias in node.names
        }
        assert not names & PASS_RUNNERS, f"{module} runs passes: {sorted(names & PASS_RUNNERS)}"


def test_the_public_api_resolves_and_is_typed() -> None:
    """Every name in api.__all__ exists, and no public function takes or returns `Any`
    beyond JSON objects (dict[str, Any])."""
    for name in recipe_engine.api.__all__:
        value = getattr(recipe_engine.api, name)
        if not inspect.isfunction(value):
            continue
        signature = inspect.signature(value)
        annotations = [str(p.annotation) for p in signature.parameters.values()]
        annotations.append(str(signature.return_annotation))
        for text in annotations:
            assert "Any" not in text.replace("dict[str, Any]", ""), f"{name}: {text}"


def test_importing_the_api_stays_cheap() -> None:
    """The CLI builds its parser from recipe_engine.api before any command runs."""
    import subprocess
    import sys

    code = (
        "import sys, recipe_engine.api\n"
        "print(sorted(m for m in ('torch', 'nnsight', 'pydantic', 'yaml') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def _function_lengths(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (
            f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}",
            (node.end_lineno or node.lineno) - node.lineno + 1,
        )
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]


def test_no_function_over_80_lines() -> None:
    long = [
        f"{where} ({lines} lines)"
        for path in MODULES.values()
        for where, lines in _function_lengths(path)
        if lines > MAX_FUNCTION_LINES
    ]
    assert not long, "split these functions: " + "; ".join(long)


def test_no_module_over_400_lines_unless_it_says_why() -> None:
    long = []
    for path in MODULES.values():
        lines = path.read_text(encoding="utf-8").splitlines()
        justified = any(line.startswith(LONG_MODULE_MARK) for line in lines[:3])
        if len(lines) > MAX_MODULE_LINES and not justified:
            long.append(f"{path.relative_to(PACKAGE.parent)} ({len(lines)} lines)")
    assert not long, f"split these modules, or justify them with {LONG_MODULE_MARK!r}: {long}"
