"""Stage 7: run a Plan through nnsight (trace, generate, edit). Plain tensor operations only,
so the same body can run remotely where nnsight does."""
