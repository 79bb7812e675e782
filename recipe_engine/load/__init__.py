"""Stage 1 of the data flow: bytes on disk -> a plain document with a source map.

Pure data: nothing here knows what a recipe means, and nothing imports torch.
"""

from recipe_engine.load.includes import LoadedDocument, load_document
from recipe_engine.load.source_map import SourceMap

__all__ = ["LoadedDocument", "SourceMap", "load_document"]
