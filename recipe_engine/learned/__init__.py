"""Steering vectors learned by gradient (`kind: trained`), through the compiled plan.

Not to be confused with recipe_engine/training/, which trains the embedded model itself: here
the model is frozen and only the steering vector moves.
"""

from recipe_engine.learned.train import train_vector

__all__ = ["train_vector"]
