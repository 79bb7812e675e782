"""What the `steer serve` tests share: a folder of profiles (recipes on the embedded model,
steering with the shipped sentiment vector file), the reference answers of `steer run`, and a
server on a free loopback port that is always shut down."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

import openai

from recipe_engine.api import RunningServer, ServeConfig, start_server
from recipe_engine.cli.main import main
from recipe_engine.serve.logs import JsonLog
from tests.conftest import RECIPES

MODEL = "builtin:tiny-sentiment"
NAME = "tiny-sentiment"
NEW_TOKENS = 10
PROMPTS = ["The weather today is", "I think the movie was", "Our flight home was"]
# name -> (strength, generation settings)
PROFILES = {
    "positive": (4.0, f"{{max_new_tokens: {NEW_TOKENS}}}"),
    "negative": (-4.0, f"{{max_new_tokens: {NEW_TOKENS}}}"),
    "mild": (1.5, f"{{max_new_tokens: {NEW_TOKENS}}}"),
    "sampled": (
        2.0,
        f"{{max_new_tokens: {NEW_TOKENS}, do_sample: true, temperature: 0.9, seed: 7}}",
    ),
}


def recipe_text(name: str, strength: float, generation: str, prompts: list[str]) -> str:
    """A profile. batch_size 1: `steer run` then answers each prompt on its own, which is what
    one request to the server is."""
    listed = json.dumps(prompts)
    return f"""version: 1
name: {name}
model: {{id: {MODEL}}}
vectors:
  sentiment: {{kind: file, path: sentiment.safetensors, key: sentiment}}
interventions:
  - {{vector: sentiment, layers: 0, positions: all, strength: {strength}}}
run:
  mode: generate
  prompts: {listed}
  batch_size: 1
  generation: {generation}
"""


def write_profiles(folder: Path, prompts: list[str] = PROMPTS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(RECIPES / "vectors" / "sentiment.safetensors", folder / "sentiment.safetensors")
    for name, (strength, generation) in PROFILES.items():
        (folder / f"{name}.yaml").write_text(recipe_text(name, strength, generation, prompts))
    return folder


def steer_run(recipe: Path, *overrides: str) -> dict[str, dict[str, str]]:
    """`steer run RECIPE --format json`: prompt -> {"steered": text, "baseline": text}."""
    argv = ["run", str(recipe), "--format", "json"]
    for override in overrides:
        argv += ["--set", override]
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(argv) == 0
    report = json.loads(out.getvalue())
    return {
        row["prompt"]: {side: row[side]["continuation"] for side in ("steered", "baseline")}
        for row in report["prompts"]
    }


@contextmanager
def serving(
    folder: Path, log: io.StringIO | None = None, **options: object
) -> Iterator[RunningServer]:
    config = ServeConfig([folder], MODEL, port=0, log=JsonLog(log), **options)  # type: ignore[arg-type]
    server = start_server(config)
    try:
        yield server
    finally:
        server.stop()


def client(server: RunningServer) -> openai.OpenAI:
    # Generous: two busy cores, a batch of several rows of a tiny model takes seconds.
    return openai.OpenAI(base_url=server.url, api_key="unused", timeout=300, max_retries=0)
