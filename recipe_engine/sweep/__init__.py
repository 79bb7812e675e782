"""Layer x strength sweeps: the grid run (grid.py) and its files."""

from recipe_engine.sweep.grid import SweepPoint, SweepResult, recommend, run_sweep, write_sweep

__all__ = ["SweepPoint", "SweepResult", "recommend", "run_sweep", "write_sweep"]
