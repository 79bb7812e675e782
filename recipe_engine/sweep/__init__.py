"""Layer x strength sweeps: the grid run and its recommendation (grid.py), and the files
written from it (output.py)."""

from recipe_engine.sweep.grid import (
    DIRECTIONS,
    SweepPoint,
    SweepRanking,
    SweepResult,
    recommend,
    run_sweep,
)
from recipe_engine.sweep.output import write_sweep

__all__ = [
    "DIRECTIONS",
    "SweepPoint",
    "SweepRanking",
    "SweepResult",
    "recommend",
    "run_sweep",
    "write_sweep",
]
