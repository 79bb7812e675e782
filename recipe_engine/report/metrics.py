"""Steering metrics: how far a recipe moved the model, and what it cost.

    token_prob   probability mass of named token sets, next position or mean over generation
    logit_diff   mean logit of positive tokens minus mean logit of negative tokens (next position)
    kl_baseline  KL(steered || baseline) of next-token distributions: the side-effect cost
    perplexity   of neutral text under each model: fluency cost

A word counts as its first token, with and without a leading space (" great" and "great"),
since BPE vocabularies hold both and either can follow a prompt.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

import torch

from recipe_engine.execute.reduce import token_ids

__all__ = ["MetricValue", "kl_divergence", "token_ids", "token_mass"]


@dataclass
class MetricValue:
    name: str
    kind: str
    baseline: float | None
    steered: float
    detail: dict[str, Any]
    prompting: float | None = None  # report.prompt_baseline: the prompted unsteered model
    controls: list[float] = field(default_factory=list)  # report.controls: one per random vector
    ci95: tuple[float, float] | None = None  # run.samples > 1: of the steered mean
    # side -> one value per prompt (per continuation with run.samples), in the report's prompt
    # order; what the mean of each side is taken over (`expect: per_prompt`, steer test)
    per_prompt: dict[str, list[float]] = field(default_factory=dict)

    @property
    def delta(self) -> float | None:
        return None if self.baseline is None else self.steered - self.baseline

    @property
    def control_mean(self) -> float | None:
        return statistics.fmean(self.controls) if self.controls else None

    @property
    def control_sd(self) -> float | None:
        return statistics.stdev(self.controls) if len(self.controls) > 1 else None

    @property
    def control_z(self) -> float | None:
        """How many control standard deviations the steered value lies from the control
        mean: (steered - mean) / sd; infinite when the controls agree exactly."""
        mean, sd = self.control_mean, self.control_sd
        if mean is None or sd is None:
            return None
        if sd == 0:
            return 0.0 if self.steered == mean else math.copysign(math.inf, self.steered - mean)
        return (self.steered - mean) / sd

    def to_json(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "kind": self.kind,
            "baseline": _finite(self.baseline),
            "steered": _finite(self.steered),
            "delta": _finite(self.delta),
            **self.detail,
        }
        if self.prompting is not None:
            out["prompting"] = _finite(self.prompting)
        if self.controls:
            out["controls"] = {
                "n": len(self.controls),
                "mean": _finite(self.control_mean),
                "sd": _finite(self.control_sd),
                "z": _finite(self.control_z),
                "values": [_finite(v) for v in self.controls],
            }
        if self.per_prompt:
            out["per_prompt"] = {
                side: [_finite(v) for v in values] for side, values in self.per_prompt.items()
            }
        if self.ci95 is not None:
            out["ci95"] = [_finite(self.ci95[0]), _finite(self.ci95[1])]
        return out


def _finite(value: float | None) -> float | str | None:
    """JSON has no NaN/Inf: report them as strings rather than as invalid numbers."""
    if value is None:
        return None
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return round(value, 6)


def token_mass(logits: torch.Tensor, ids: list[int]) -> torch.Tensor:
    """Probability mass of `ids` under softmax(logits) along the last axis."""
    return torch.softmax(logits.float(), dim=-1)[..., ids].sum(dim=-1)


def kl_divergence(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL(P || Q) per row, in nats."""
    log_p = torch.log_softmax(p_logits.float(), dim=-1)
    log_q = torch.log_softmax(q_logits.float(), dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1)
