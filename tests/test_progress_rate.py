"""The run progress bar shows a tokens/s rate for generating runs, and none for trace runs."""

from __future__ import annotations

import pytest

from recipe_engine.cli.progress import Progress


@pytest.mark.parametrize(("tokens", "shown"), [(128, True), (None, False)])
def test_generation_bar_shows_tokens_per_second(
    tokens: int | None, shown: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    progress = Progress(enabled=True, tokens_per_prompt=tokens)
    progress("steered", 8, 16)
    progress("steered", 16, 16)
    progress.close()
    assert ("tok/s" in capsys.readouterr().err) is shown
