"""Stage 4 of the data flow: a validated recipe's `model:` -> a loaded nnsight model and the
architecture adapter that maps site names to modules. First stage that imports torch."""
