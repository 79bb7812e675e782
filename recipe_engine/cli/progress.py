"""A progress callback for long stages, drawn with tqdm on stderr only when it is a terminal.

Given the tokens each prompt generates (a generate or edit run's max_new_tokens), a bar also
shows the generation rate in tokens per second: prompts done x max_new_tokens over the bar's
elapsed time, an upper bound when rows stop early at the end-of-text token. It moves once per
batch, which on a long generation is what a user waiting on a GPU wants to see.
"""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["Progress"]


class Progress:
    """Callable as (stage, done, total); one bar per stage, closed when the stage completes."""

    def __init__(self, enabled: bool | None = None, tokens_per_prompt: int | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.tokens_per_prompt = tokens_per_prompt
        self.bars: dict[str, Any] = {}
        self.started: dict[str, float] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None:
            bar = self.bars[stage] = tqdm(total=total, desc=stage, unit="prompt", leave=False)
            self.started[stage] = time.perf_counter()
        bar.n = done
        elapsed = time.perf_counter() - self.started[stage]
        if self.tokens_per_prompt and done and elapsed > 0:
            rate = done * self.tokens_per_prompt / elapsed
            bar.set_postfix_str(f"<= {rate:,.0f} tok/s", refresh=False)
        bar.refresh()
        if done >= total:
            bar.close()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
