"""The training objectives, on per-sequence summed log-likelihoods (README, Trained steering).

lm          L = - sum_i log p_v(y_i | x_i) / sum_i |y_i|
preference  BiPO (arXiv 2406.00045), d_i = +-1 drawn per example, the policy steered by d_i v:
            L = - mean_i log sigmoid(d_i beta [(log p_{d v}(y_w) - log p(y_w))
                                               - (log p_{d v}(y_l) - log p(y_l))])
reps        RePS (arXiv 2505.20809; axbench's scaled SimPO), reference-free in the policy
            term: with d_i = +1 the winner is y_w (chosen) and the policy steered by +v;
            with d_i = -1 the winner is y_l (rejected), steered by -v. For winner a, loser b:
            s = max(1, gamma (log p(b) - log p(a)))   (the unsteered reference, no gradient)
            L = - mean_i log sigmoid(s log p_{d v}(a) / |a| - log p_{d v}(b) / |b|)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["lm_loss", "preference_loss", "reps_loss"]


def lm_loss(logp: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    return -logp.sum() / count.sum()


def preference_loss(
    policy: tuple[torch.Tensor, torch.Tensor],
    reference: tuple[torch.Tensor, torch.Tensor],
    signs: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    (chosen, rejected), (ref_chosen, ref_rejected) = policy, reference
    margin = (chosen - ref_chosen) - (rejected - ref_rejected)
    return -F.logsigmoid(signs * beta * margin).mean()


def reps_loss(
    policy: tuple[torch.Tensor, torch.Tensor],
    reference: tuple[torch.Tensor, torch.Tensor],
    counts: tuple[torch.Tensor, torch.Tensor],
    signs: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    up = signs > 0
    win = torch.where(up, policy[0], policy[1])
    lose = torch.where(up, policy[1], policy[0])
    ref_win = torch.where(up, reference[0], reference[1])
    ref_lose = torch.where(up, reference[1], reference[0])
    n_win = torch.where(up, counts[0], counts[1])
    n_lose = torch.where(up, counts[1], counts[0])
    scale = torch.clamp_min(gamma * (ref_lose - ref_win), 1.0).detach()
    return -F.logsigmoid(scale * win / n_win - lose / n_lose).mean()
