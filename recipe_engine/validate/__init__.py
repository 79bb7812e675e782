"""Stage 2 of the data flow: a loaded document -> a typed Recipe plus every diagnostic.

Torch-free by design, so `steer validate` runs in any CI in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from recipe_engine.builtin_models import builtin_name
from recipe_engine.diagnostics import Diagnostic
from recipe_engine.errors import RecipeLoadError
from recipe_engine.format.recipe import Recipe
from recipe_engine.load.includes import LoadedDocument, load_document
from recipe_engine.load.overrides import apply_overrides
from recipe_engine.load.paths import display_path
from recipe_engine.validate.conditions import check_conditions
from recipe_engine.validate.expectations import check_expectations
from recipe_engine.validate.experts_site import check_experts_site
from recipe_engine.validate.lowrank import check_lowrank
from recipe_engine.validate.model_checks import ENVIRONMENT_CODES, check_against_model
from recipe_engine.validate.phases import schema_without_unknown_keys, skipped_note
from recipe_engine.validate.prompt_groups import check_prompt_groups
from recipe_engine.validate.prompt_texts import check_prompt_texts
from recipe_engine.validate.references import check_references
from recipe_engine.validate.schema_errors import validate_schema
from recipe_engine.validate.semantic import check_semantics

__all__ = ["ValidationResult", "validate_file"]


@dataclass
class ValidationResult:
    path: Path
    display: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    recipe: Recipe | None = None
    document: LoadedDocument | None = None
    # Set when later phases were skipped because of schema errors (validate/phases.py).
    note: str | None = None

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def environment_failure(self) -> bool:
        """Every error is the machine's fault (e.g. a hub model not in the cache)."""
        return bool(self.errors) and all(d.code in ENVIRONMENT_CODES for d in self.errors)


def validate_file(
    path: str | Path,
    *,
    check_model: bool = False,
    allow_outside_root: bool = False,
    overrides: list[str] | None = None,
    root: Path | None = None,
) -> ValidationResult:
    """Load and validate one recipe; never raises for a bad recipe, returns its diagnostics.

    `overrides` are `--set PATH=VALUE` strings applied before validation (UsageError if a path
    does not fit the document). `root`: the folder every file the recipe reads must be in
    (default: its repository, load/paths.py); `steer serve` confines posted recipes with it."""
    path = Path(path)
    result = ValidationResult(path, display_path(path))
    try:
        doc = load_document(path, root=root, allow_outside_root=allow_outside_root)
    except RecipeLoadError as exc:
        result.diagnostics = exc.diagnostics
        return result
    result.document = doc
    read_warnings = list(doc.warnings)
    if overrides:
        read_warnings += apply_overrides(doc.data, overrides, doc.source_map)
    recipe, diagnostics = validate_schema(doc)
    checked = doc
    if recipe is None and diagnostics:
        # Unknown keys alone do not stop the later phases: they check the rest (phases.py).
        retry = schema_without_unknown_keys(doc, diagnostics)
        if retry is None:
            result.note = skipped_note(sum(d.severity == "error" for d in diagnostics))
        else:
            recipe, checked = retry
    diagnostics += read_warnings
    if recipe is not None:
        later = check_semantics(recipe, checked)
        later += check_prompt_groups(recipe, checked)
        later += check_conditions(recipe, checked)
        later += check_lowrank(recipe, checked)
        later += check_experts_site(recipe, checked)
        later += check_expectations(recipe, checked.diagnostic)
        later += check_prompt_texts(recipe, checked)
        later += check_references(
            recipe, checked, allow_outside_root=allow_outside_root, check_model=check_model
        )
        # A builtin model's shape ships with the package: its layers, heads and widths are
        # checked on every validation; other models' need --check-model (reads their config).
        by_shape = check_model or builtin_name(recipe.model.id) is not None
        if by_shape and not any(d.severity == "error" for d in later):
            later += check_against_model(recipe, checked)
        diagnostics += later
    result.recipe = recipe if not any(d.severity == "error" for d in diagnostics) else None
    result.diagnostics = sorted(diagnostics, key=Diagnostic.sort_key)
    return result
