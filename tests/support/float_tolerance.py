"""Tolerances for comparing float32 results that were computed along different paths.

Two float32 computations of the same value agree bit for bit only when they run the same
operations in the same order: the same process, machine and library build. Another CPU (its
BLAS kernels block a matrix product differently), another batch composition (other GEMM
shapes) or another way of applying an op (a strength per row instead of one scalar) sums in
another order, and every rounding of a sum is off by up to half an ulp (unit in the last place)
of the running total. Those errors add like a random walk: an n-term reduction computed in
another order lands about sqrt(n) ulps away, ulps of the magnitude of the *terms* (a difference
of two means can be far smaller than the activations it subtracts; its error is not).

So a tolerance here is `sqrt(width) * eps32 * magnitude`, per reduction the two paths may order
differently, with `width` the longest reduction on the path and `magnitude` the largest value
entering it. It is derived from the computation, never from what happened to pass on one
machine. Bitwise comparisons (torch.equal, byte equality, sha256 pins of a rebuilt file) are
kept only for the same computation run twice on one machine.
"""

from __future__ import annotations

import math
import re

import torch

EPS32 = float(torch.finfo(torch.float32).eps)  # 2**-23, about 1.19e-7: one ulp at 1.0


def reordered_sum_tolerance(magnitude: float, width: int, reductions: int = 1) -> float:
    """How far two float32 results may lie apart when `reductions` reductions of up to `width`
    terms of size `magnitude` were summed in different orders."""
    return reductions * math.sqrt(width) * EPS32 * magnitude


# builtin:tiny-sentiment (recipe_engine/builtin_weights/tiny-sentiment): GPT-2 layout,
# n_embd 192, MLP width 4 * 192 = 768, 4 blocks, vocabulary 1368.
TINY_WIDTH = 768
# The largest block-0 residual entry on the shipped sentiment data (recipes/data/positive.txt,
# negative.txt): hidden_states[1].abs().max() is 97 in float32 and float64 alike; 100 bounds it.
TINY_RESID_MAGNITUDE = 100.0
TINY_LAYERS = 4


def tiny_logits_tolerance(reference: torch.Tensor) -> float:
    """Next-token logits of builtin:tiny-sentiment computed along two paths (a batch of other
    rows, an op applied per row, a plain hook): every block and the LM head may sum in another
    order, so TINY_LAYERS + 1 reductions of up to TINY_WIDTH terms, at the logits' own magnitude
    (about 13, so about 2e-4; one ulp of 13 is already 1.5e-6)."""
    magnitude = float(reference.detach().abs().max())
    return reordered_sum_tolerance(magnitude, TINY_WIDTH, TINY_LAYERS + 1)


_DECIMAL = r"[-+]?\d+\.\d+"


def shown_line_printed(shown: str, printed: str) -> bool:
    """Whether `printed` holds `shown` (whitespace collapsed in both), its decimal numbers allowed
    one unit off in their last digit. A number printed to d decimals from a float32 result whose
    machine-to-machine noise (~1e-6) is far under 10**-d still rounds to the neighbouring digit
    when it lies that close to a rounding boundary, and can never move further than that one
    unit; words, integers and the digit count stay exact."""
    shown, printed = " ".join(shown.split()), " ".join(printed.split())
    numbers = re.findall(_DECIMAL, shown)
    pattern = f"({_DECIMAL})".join(re.escape(part) for part in re.split(_DECIMAL, shown))
    for match in re.finditer(pattern, printed):
        pairs = zip(match.groups(), numbers, strict=True)
        if all(_within_last_digit(got, want) for got, want in pairs):
            return True
    return False


def _within_last_digit(got: str, want: str) -> bool:
    decimals = len(want.split(".")[1])
    if len(got.split(".")[1]) != decimals:
        return False
    return abs(float(got) - float(want)) <= 10**-decimals * (1 + 1e-9)
