"""A logistic-regression probe, fitted with torch's L-BFGS.

Why not scikit-learn: it would be a heavy dependency for one small convex fit, and torch is
already here. Features are standardized for the fit (well-conditioned, fast), then the weights
are mapped back to the raw activation space so the direction can be added to activations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["ProbeResult", "train_probe"]


@dataclass
class ProbeResult:
    direction: torch.Tensor  # unit vector in activation space, pointing toward label 1
    train_accuracy: float
    test_accuracy: float | None
    # The probe's decision on raw activations x: P(label 1) = sigmoid(scale * (x . direction)
    # + bias). A `when:` condition with `score: probability` reads it.
    scale: float = 1.0
    bias: float = 0.0


def _accuracy(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> float:
    return float(((x @ w + b > 0).long() == y).float().mean())


def train_probe(
    features: torch.Tensor,
    labels: torch.Tensor,
    *,
    test_fraction: float = 0.2,
    regularization: float = 1.0,
    seed: int = 0,
    max_iter: int = 200,
) -> ProbeResult:
    x = features.double()
    y = labels.long()
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=generator)
    n_test = round(len(y) * test_fraction)
    if len(y) - n_test < 2:
        n_test = 0
    test, train = order[:n_test], order[n_test:]
    mean, std = x[train].mean(dim=0), x[train].std(dim=0).clamp_min(1e-8)
    z = (x - mean) / std
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=max_iter, line_search_fn="strong_wolfe")
    target = y[train].double()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = z[train] @ w + b
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
        loss = loss + 0.5 * (w @ w) / (regularization * len(train))
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    w_std, b_std = w.detach(), b.detach()
    train_acc = _accuracy(z[train], y[train], w_std, b_std)
    test_acc = _accuracy(z[test], y[test], w_std, b_std) if n_test else None
    raw = w_std / std  # same decision function on unstandardized activations
    bias = float(b_std - (mean / std) @ w_std)
    scale = float(raw.norm())
    return ProbeResult((raw / raw.norm()).float(), train_acc, test_acc, scale, bias)
