"""Stage 5: build every named vector of a recipe into a tensor, with its provenance."""

from recipe_engine.vectors.build import BuiltVector, build_vectors

__all__ = ["BuiltVector", "build_vectors"]
