"""The one entry point of the export stage: compile the recipe, then write the chosen format."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recipe_engine.pipeline import CompiledRecipe, LoadedRecipe

__all__ = ["EXPORT_FORMATS", "export_recipe"]

EXPORT_FORMATS = ("hf", "gguf-control-vector")


def export_recipe(
    source: CompiledRecipe | LoadedRecipe | str | Path, fmt: str, out: str | Path
) -> dict[str, Any]:
    """Write `source`'s steering as `fmt` to `out` (atomically). Returns a summary (JSON).
    Raises RecipeError at the recipe's lines for whatever the format cannot hold."""
    from recipe_engine.pipeline import CompiledRecipe, compile_recipe

    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose from {', '.join(EXPORT_FORMATS)}")
    if fmt == "hf":  # before the model loads: a folder it may not replace is refused at once
        from recipe_engine.export.destination import check_destination

        check_destination(Path(out))
    compiled = source if isinstance(source, CompiledRecipe) else compile_recipe(source)
    if fmt == "hf":
        from recipe_engine.export.hf import export_hf

        return export_hf(compiled, Path(out))
    from recipe_engine.export.gguf import export_control_vector

    return export_control_vector(compiled, Path(out))
