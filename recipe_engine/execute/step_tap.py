"""What a caller hears of a running generate call, step by step: each new token (`on_step`),
a `stop` asked after each step, each chosen token's log-probability, and a pause between two
steps (execute/pausing.py). One object is both transformers' streamer and a stopping
criterion, so a call with no listener gets neither and is exactly what it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from recipe_engine.execute.logprobs import StepLogprobs
from recipe_engine.execute.pausing import PauseCheck

__all__ = ["StepTap", "tap_kwargs"]


class StepTap(BaseStreamer, StoppingCriteria):
    """What a caller hears of a running generate call: transformers hands every step's new
    token ids to a streamer (`put`) and asks its stopping criteria after each step. The first
    `put` is the prompt ids, not a step: skipped."""

    def __init__(
        self,
        on_step: Callable[[list[int]], None] | None,
        stop: Callable[[], bool] | None,
        logprobs: StepLogprobs | None = None,
        pause: PauseCheck | None = None,
    ):
        self.on_step = on_step
        self.stop = stop
        self.logprobs = logprobs
        self.pause = pause
        self.paused = False  # the call ended because `pause` asked for it
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            if self.pause is not None:
                self.pause.check(value)
            return
        if self.logprobs is not None:  # the step's token is known: its log-probability
            self.logprobs.chosen(value)
        if self.on_step is not None:
            self.on_step([int(t) for t in value.reshape(-1).tolist()])

    def end(self) -> None:
        self.prompt_seen = False  # ready for the next batch

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **_: Any) -> torch.Tensor:
        done = self.stop is not None and self.stop()
        if not done and self.pause is not None and self.pause.wanted():
            self.paused = done = True
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


def tap_kwargs(
    on_step: Callable[[list[int]], None] | None,
    stop: Callable[[], bool] | None,
    logprobs: StepLogprobs | None = None,
    pause: PauseCheck | None = None,
) -> dict[str, Any]:
    """The generate kwargs that feed `on_step` and ask `stop` (none without a listener: the
    call is then exactly what it was), record each chosen token's log-probability, and pause
    the call when `pause` wants it."""
    if on_step is None and logprobs is None and pause is None:
        return {}
    tap = StepTap(on_step, stop, logprobs, pause)
    return {"streamer": tap, "stopping_criteria": StoppingCriteriaList([tap])}
