"""The public Python API: the `steer` command line calls nothing else (tests/test_architecture.py
holds it to that), so whatever a command does, a program can do too.

    >>> from recipe_engine.api import load_recipe, compile_recipe, run_recipe
    >>> loaded = load_recipe("recipes/activation-addition.yaml", overrides=["run.mode=trace"])
    >>> report = run_recipe(compile_recipe(loaded))
    >>> report.metric("token_prob:positive").delta

    validate      validate_file -> ValidationResult                       (torch-free)
    run           load_recipe -> compile_recipe -> run_recipe -> RunReport; render_text
    explain       explain_recipe (a JSON object)
    vectors       build_vectors_file; inspect_vectors -> VectorFileInfo
    sweep         run_sweep -> SweepResult; write_sweep
    eval          evaluate_recipe -> EvalTable; render_eval_table (text/json/csv/markdown/plot)
    serve         ServeConfig -> run_server (foreground); start_server -> RunningServer (thread)
    export        export_recipe (hf folder, gguf control vector)
    schema        render_schema                                           (torch-free)
    examples      list_examples -> [Example]; copy_example                (torch-free)
    rows          run_rows(model, [Row(prompt, plan)], generation=GenerationSpec(...))
                  -> [RowResult]: rows with their own plans (CompiledRecipe.plan, or Plan() for
                  none) in shared batches (prompt groups; a server's profiles)
    condition     find_condition -> ConditionSearch; write_condition_search
    test          run_recipe_tests -> [RecipeTestResult] (expect: claims); junit_xml
    lock          write_lock, check_lock (RECIPE.lock; torch-free)

Each name is imported from its stage on first use (PEP 562), so importing this module is cheap
and torch-free: the CLI builds its parser from it (BACKENDS) before any command runs.

Thread safety: nnsight is not thread-safe, so every pass through a model holds that model's
lock; models are cached per process and shared, so concurrent calls serialize on the model
they use and never corrupt each other's traces.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from recipe_engine.model_config import BACKENDS

if TYPE_CHECKING:
    from recipe_engine.eval_runs import evaluate_recipe
    from recipe_engine.evaluate.expectations import ExpectationResult
    from recipe_engine.evaluate.table import EvalTable
    from recipe_engine.evaluate.table_output import render_eval_table
    from recipe_engine.examples import Example, copy_example, list_examples
    from recipe_engine.execute.batch import Row, RowResult, run_rows
    from recipe_engine.execute.gates import GateOutcome
    from recipe_engine.export import EXPORT_FORMATS, export_recipe
    from recipe_engine.format.run_spec import GenerationSpec
    from recipe_engine.format.schema_export import render_schema
    from recipe_engine.load.paths import display_path
    from recipe_engine.lock import check_lock, write_lock
    from recipe_engine.pipeline import (
        CompiledRecipe,
        LoadedRecipe,
        Progress,
        build_vectors_file,
        compile_recipe,
        explain_recipe,
        load_recipe,
        run_recipe,
    )
    from recipe_engine.plan import Plan
    from recipe_engine.recipe_tests import RecipeTestResult, junit_xml, run_recipe_tests
    from recipe_engine.report.results import RunReport
    from recipe_engine.report.text import render_text
    from recipe_engine.serve.server import RunningServer, ServeConfig, run_server, start_server
    from recipe_engine.sweep import SweepRanking, SweepResult, run_sweep, write_sweep
    from recipe_engine.sweep.condition import ConditionSearch, find_condition
    from recipe_engine.sweep.condition_output import write_condition_search
    from recipe_engine.validate import ValidationResult, validate_file
    from recipe_engine.validate.sniff import looks_like_recipe
    from recipe_engine.vectors.build import BuiltVector
    from recipe_engine.vectors.inspect import VectorFileInfo, inspect_vectors

__all__ = [
    "BACKENDS",
    "EXPORT_FORMATS",
    "BuiltVector",
    "CompiledRecipe",
    "ConditionSearch",
    "EvalTable",
    "Example",
    "ExpectationResult",
    "GateOutcome",
    "GenerationSpec",
    "LoadedRecipe",
    "Plan",
    "Progress",
    "RecipeTestResult",
    "Row",
    "RowResult",
    "RunReport",
    "RunningServer",
    "ServeConfig",
    "SweepRanking",
    "SweepResult",
    "ValidationResult",
    "VectorFileInfo",
    "build_vectors_file",
    "check_lock",
    "compile_recipe",
    "copy_example",
    "display_path",
    "evaluate_recipe",
    "explain_recipe",
    "export_recipe",
    "find_condition",
    "inspect_vectors",
    "junit_xml",
    "list_examples",
    "load_recipe",
    "looks_like_recipe",
    "render_eval_table",
    "render_schema",
    "render_text",
    "run_recipe",
    "run_recipe_tests",
    "run_rows",
    "run_server",
    "run_sweep",
    "start_server",
    "validate_file",
    "write_condition_search",
    "write_lock",
    "write_sweep",
]

_WHERE = {
    "Example": "recipe_engine.examples",
    "copy_example": "recipe_engine.examples",
    "list_examples": "recipe_engine.examples",
    "display_path": "recipe_engine.load.paths",
    "evaluate_recipe": "recipe_engine.eval_runs",
    "EvalTable": "recipe_engine.evaluate.table",
    "render_eval_table": "recipe_engine.evaluate.table_output",
    "Row": "recipe_engine.execute.batch",
    "RowResult": "recipe_engine.execute.batch",
    "run_rows": "recipe_engine.execute.batch",
    "GateOutcome": "recipe_engine.execute.gates",
    "ExpectationResult": "recipe_engine.evaluate.expectations",
    "check_lock": "recipe_engine.lock",
    "write_lock": "recipe_engine.lock",
    "RecipeTestResult": "recipe_engine.recipe_tests",
    "junit_xml": "recipe_engine.recipe_tests",
    "run_recipe_tests": "recipe_engine.recipe_tests",
    "EXPORT_FORMATS": "recipe_engine.export",
    "export_recipe": "recipe_engine.export",
    "GenerationSpec": "recipe_engine.format.run_spec",
    "render_schema": "recipe_engine.format.schema_export",
    "Plan": "recipe_engine.plan",
    "CompiledRecipe": "recipe_engine.pipeline",
    "LoadedRecipe": "recipe_engine.pipeline",
    "Progress": "recipe_engine.pipeline",
    "build_vectors_file": "recipe_engine.pipeline",
    "compile_recipe": "recipe_engine.pipeline",
    "explain_recipe": "recipe_engine.pipeline",
    "load_recipe": "recipe_engine.pipeline",
    "run_recipe": "recipe_engine.pipeline",
    "RunReport": "recipe_engine.report.results",
    "render_text": "recipe_engine.report.text",
    "RunningServer": "recipe_engine.serve.server",
    "ServeConfig": "recipe_engine.serve.server",
    "run_server": "recipe_engine.serve.server",
    "start_server": "recipe_engine.serve.server",
    "SweepRanking": "recipe_engine.sweep",
    "SweepResult": "recipe_engine.sweep",
    "run_sweep": "recipe_engine.sweep",
    "write_sweep": "recipe_engine.sweep",
    "ConditionSearch": "recipe_engine.sweep.condition",
    "find_condition": "recipe_engine.sweep.condition",
    "write_condition_search": "recipe_engine.sweep.condition_output",
    "ValidationResult": "recipe_engine.validate",
    "validate_file": "recipe_engine.validate",
    "looks_like_recipe": "recipe_engine.validate.sniff",
    "BuiltVector": "recipe_engine.vectors.build",
    "VectorFileInfo": "recipe_engine.vectors.inspect",
    "inspect_vectors": "recipe_engine.vectors.inspect",
}


def __getattr__(name: str) -> Any:  # PEP 562: the value's type is the imported name's own
    if name in _WHERE:
        # Looked up in its stage on every access, never copied here: what the API hands out is
        # always what the stage holds now (a test's monkeypatch of a stage reaches the CLI).
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'recipe_engine.api' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
