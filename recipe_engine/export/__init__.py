"""Export a recipe for other tools: a transformers folder with the steering baked into its
weights (hf.py over fold.py), or a llama.cpp control vector (gguf.py)."""

from __future__ import annotations

from recipe_engine.export.api import EXPORT_FORMATS, export_recipe

__all__ = ["EXPORT_FORMATS", "export_recipe"]
