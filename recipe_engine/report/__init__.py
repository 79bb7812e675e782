"""Stage 8: turn baseline and steered passes into numbers people can read and compare."""
