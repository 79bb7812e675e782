"""The public API from several threads at once: the same reports as one after the other.

The recipes share one builtin model (one cached LoadedModel) and cover the three modes: trace,
generate, and edit (an in-place edit of that shared model, which must never leak into the
other threads' passes). Seeded sampling (persistent-edit) must also give the same text.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from recipe_engine import load_recipe, run_recipe
from recipe_engine.resolve import builtin_build, model_loader
from recipe_engine.resolve.model_loader import clear_model_cache, load_model
from tests.conftest import RECIPES

pytestmark = pytest.mark.slow

NAMES = ["activation-addition.yaml", "generate-every-step.yaml", "persistent-edit.yaml"]
THREADS = 6


def report(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = run_recipe(RECIPES / name).to_json()
    del payload["timing"]
    return payload


def run_concurrently(jobs: list[str]) -> list[Any]:
    """Run `report` for every job, each in its own thread, all released at the same moment."""
    start = threading.Barrier(len(jobs))

    def job(name: str) -> dict[str, Any]:
        start.wait(timeout=60)
        return report(name)

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(job, jobs))


@pytest.fixture(autouse=True)
def restore_model_cache() -> Iterator[None]:
    saved = dict(model_loader._CACHE)
    yield
    clear_model_cache()
    model_loader._CACHE.update(saved)


def _assert_same(name: str, got: dict[str, Any], want: dict[str, Any]) -> None:
    for key in ("metrics", "prompts", "plan", "vectors"):
        assert got[key] == want[key], f"{name}: {key} differs from the sequential run"
    assert got == want


def test_recipes_share_one_loaded_model() -> None:
    models = set()
    for name in NAMES:
        loaded = load_recipe(RECIPES / name)
        models.add(id(load_model(loaded.recipe.model, loaded.model_dir)))
    assert len(models) == 1


def test_concurrent_runs_equal_sequential_runs() -> None:
    sequential = {name: report(name) for name in NAMES}
    # the recipes differ, and steer (else equal reports would prove little)
    assert len({repr(sequential[n]["prompts"]) for n in NAMES}) == len(NAMES)
    for name in NAMES:
        assert any(p["steered"] != p["baseline"] for p in sequential[name]["prompts"]), name
    jobs = [NAMES[i % len(NAMES)] for i in range(THREADS)]
    for _ in range(2):
        results = run_concurrently(jobs)
        for name, got in zip(jobs, results, strict=True):
            _assert_same(name, got, sequential[name])
    # and the shared model is left clean: a sequential run afterwards is unchanged
    for name in NAMES:
        assert report(name) == sequential[name]


def test_concurrent_first_use_builds_the_builtin_model_once_and_right(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sequential = {name: report(name) for name in NAMES}
    jobs = [NAMES[i % len(NAMES)] for i in range(THREADS)]
    real_build = builtin_build.build_builtin
    for _ in range(4):
        # Line up every thread that gets as far as building the model, so that the race
        # happens on each round; an engine that builds once (under a lock) just times out here.
        lineup = threading.Barrier(THREADS)

        def build(name: str, lineup: threading.Barrier = lineup) -> Any:
            with contextlib.suppress(threading.BrokenBarrierError):
                lineup.wait(timeout=1.0)
            return real_build(name)

        monkeypatch.setattr(builtin_build, "build_builtin", build)
        clear_model_cache()
        results = run_concurrently(jobs)
        for name, got in zip(jobs, results, strict=True):
            _assert_same(name, got, sequential[name])


SAMPLING_RECIPE = """\
version: 1
name: sampling-{model}
model: {{id: builtin:{model}}}
vectors:
  noise: {{kind: random, seed: 0, norm: 1.0}}
interventions:
  - {{vector: noise, op: add, layers: 1, strength: 0.5}}
run:
  mode: generate
  prompts: ["The weather today is", "I think the movie was"]
  generation: {{max_new_tokens: 40, do_sample: true, temperature: 1.0, seed: 0}}
"""


def test_seeded_sampling_on_two_models_at_once(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    paths = []
    for model in ("tiny-random", "tiny-random-llama"):
        path = tmp_path / f"{model}.yaml"
        path.write_text(SAMPLING_RECIPE.format(model=model), encoding="utf-8")
        paths.append(path)

    def sampled(path: Path) -> list[Any]:
        payload = run_recipe(path).to_json()
        return [
            (p["baseline"]["continuation"], p["steered"]["continuation"])
            for p in payload["prompts"]
        ]

    sequential = {path: sampled(path) for path in paths}
    assert sequential == {path: sampled(path) for path in paths}  # seeded: reproducible
    for _ in range(2):
        start = threading.Barrier(len(paths))

        def job(path: Path, start: threading.Barrier = start) -> list[Any]:
            start.wait(timeout=60)
            return sampled(path)

        with ThreadPoolExecutor(max_workers=len(paths)) as pool:
            results = list(pool.map(job, paths))
        for path, got in zip(paths, results, strict=True):
            assert got == sequential[path], path.name
