"""Same recipe, same inputs, same bytes: vector files, greedy and seeded generation, JSON reports.

1. `steer vectors build --out` twice, each in a fresh process with a fresh cache folder
   (STEER_CACHE_DIR): byte-identical safetensors files, for a contrastive (mean_diff), a pca_diff
   and a probe vector of the embedded model.
2. Greedy generation twice: identical token ids and text.
3. Sampled generation (`run.generation.do_sample`, `temperature`, `seed`): the same seed gives
   the same tokens; another seed gives other tokens.
4. `steer run --format json` twice, each in a fresh process (the first with a cold vector cache,
   the second served from it): identical JSON once the volatile keys are removed. VOLATILE lists
   them: only the wall-clock `timing` section; everything else (prompts, continuations, top
   tokens and probabilities, metrics, plan, vector provenance with cache keys, warnings) must
   match exactly.

(1) and (4) run `python -m recipe_engine` in subprocesses, so nothing is shared in memory
(model cache, RNG state, vector cache objects); (2) and (3) run in this process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open

from recipe_engine import load_recipe, run_recipe
from tests.conftest import RECIPES

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

# Keys of `steer run --format json` that may differ between two runs of the same recipe: the
# seconds each stage took. Top-level key -> its sub-keys (all of them are volatile).
VOLATILE = {"timing": {"load_s", "vectors_s", "run_s"}}

RECIPE = """\
version: 1
name: determinism
model: {id: builtin:tiny-sentiment}
vectors:
  sentiment:
    kind: contrastive
    positive: {file: data/positive.txt}
    negative: {file: data/negative.txt}
    layer: 0
    position: mean
  sentiment_pca:
    kind: contrastive
    method: pca_diff
    paired: true
    positive: {file: data/positive.txt}
    negative: {file: data/negative.txt}
    layer: 1
    position: mean
  probe_dir:
    kind: probe
    data: data/sentiment.jsonl
    layer: 0
    position: mean
    test_fraction: 0.25
    normalize: unit
interventions:
  - {vector: sentiment, op: add, layers: 0, positions: all, strength: 2.0}
  - {vector: sentiment_pca, op: add, layers: 1, positions: all, strength: 1.0}
  - {vector: probe_dir, op: add, layers: 0, positions: all, strength: 10.0}
run:
  mode: generate
  prompts: [The weather today is, I think the movie was, My trip to the city was]
  generation: {max_new_tokens: 12}
report:
  top_tokens: 5
  metrics:
    - kind: token_prob
      tokens: {positive: [great, wonderful, excellent], negative: [terrible, awful, horrible]}
    - {kind: kl_baseline}
"""
VECTORS = ("sentiment", "sentiment_pca", "probe_dir")


@pytest.fixture(scope="module")
def recipe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recipe, with copies of the gallery's data, in a repository of its own."""
    root = tmp_path_factory.mktemp("determinism")
    (root / ".git").mkdir()
    (root / "data").mkdir()
    for name in ("positive.txt", "negative.txt", "sentiment.jsonl"):
        shutil.copy(RECIPES / "data" / name, root / "data" / name)
    path = root / "determinism.yaml"
    path.write_text(RECIPE, encoding="utf-8")
    return path


def steer(*args: str | Path, cache: Path) -> subprocess.CompletedProcess[str]:
    """`python -m recipe_engine ARGS` in a fresh process, with its own vector cache folder."""
    env = {
        **os.environ,
        "STEER_CACHE_DIR": str(cache),
        "HF_HUB_OFFLINE": "1",
        "NO_COLOR": "1",
        "OMP_NUM_THREADS": "1",  # the same thread count in every process, as in this one
    }
    env.pop("STEER_NO_CACHE", None)
    result = subprocess.run(
        [sys.executable, "-m", "recipe_engine", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return result


# -- 1. vector files ---------------------------------------------------------------------------


def test_vectors_build_is_byte_identical_across_processes(recipe: Path, tmp_path: Path) -> None:
    outs = []
    for name in ("first", "second"):
        cache = tmp_path / f"cache-{name}"
        out = tmp_path / f"{name}.safetensors"
        log = steer("vectors", "build", recipe, "--out", out, cache=cache).stdout
        for vector in VECTORS:  # each process extracted every vector itself
            assert f"{vector}: shape [192]" in log and "(cache)" not in log, log
        assert len(list(cache.rglob("*.safetensors"))) == len(VECTORS)
        outs.append(out)

    first, second = (p.read_bytes() for p in outs)
    assert first == second
    with safe_open(str(outs[0]), framework="pt") as handle:
        assert sorted(handle.keys()) == sorted(VECTORS)
        provenance = json.loads(handle.metadata()["vectors"])
        tensors = {key: handle.get_tensor(key) for key in VECTORS}
    assert provenance["sentiment_pca"]["method"] == "pca_diff"
    assert provenance["probe_dir"]["kind"] == "probe"
    for name, tensor in tensors.items():  # real vectors, not zeros that would trivially match
        assert bool(torch.isfinite(tensor).all()) and float(tensor.norm()) > 0.5, name


# -- 2 and 3. generation -----------------------------------------------------------------------


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("STEER_NO_CACHE", raising=False)


def generate(recipe: Path, *overrides: str) -> dict[str, Any]:
    """Token ids and text of the baseline and steered continuations of every prompt."""
    report = run_recipe(load_recipe(recipe, overrides=list(overrides)))
    return {
        "ids": {side: report.passes[side].generated for side in ("baseline", "steered")},
        "text": [
            (p.baseline.continuation if p.baseline else None, p.steered.continuation)
            for p in report.prompts
        ],
    }


@pytest.mark.usefixtures("own_cache")
def test_greedy_generation_is_deterministic(recipe: Path) -> None:
    first, second = generate(recipe), generate(recipe)
    assert first == second
    steered = first["ids"]["steered"]
    assert len(steered) == 3 and all(len(ids) > 0 for ids in steered)
    assert all(text for pair in first["text"] for text in pair)


SAMPLED = ("run.generation.do_sample=true", "run.generation.temperature=1.0")


@pytest.mark.usefixtures("own_cache")
def test_sampled_generation_follows_the_seed(recipe: Path) -> None:
    seed_7 = generate(recipe, *SAMPLED, "run.generation.seed=7")
    assert generate(recipe, *SAMPLED, "run.generation.seed=7") == seed_7
    seed_8 = generate(recipe, *SAMPLED, "run.generation.seed=8")
    # 3 prompts x 12 tokens x 2 sides from a 1368-token vocabulary at temperature 1: two seeds
    # agreeing everywhere would mean the seed is ignored.
    assert seed_8["ids"] != seed_7["ids"]
    assert seed_8["ids"]["steered"] != seed_7["ids"]["steered"]
    assert seed_7 != generate(recipe)  # and sampling is not greedy decoding in disguise


# -- 4. JSON reports ---------------------------------------------------------------------------


def without_volatile(report: dict[str, Any]) -> dict[str, Any]:
    for key, sub_keys in VOLATILE.items():
        assert set(report[key]) == sub_keys, f"{key} holds other keys than the volatile ones"
    return {k: v for k, v in report.items() if k not in VOLATILE}


def test_json_report_is_identical_across_processes(recipe: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cold = json.loads(steer("run", recipe, "--format", "json", cache=cache).stdout)
    assert len(list(cache.rglob("*.safetensors"))) == len(VECTORS)
    warm = json.loads(steer("run", recipe, "--format", "json", cache=cache).stdout)

    assert without_volatile(cold) == without_volatile(warm)
    # The comparison is not vacuous: the report holds what a run produces.
    assert set(cold) - set(VOLATILE) >= {"metrics", "plan", "prompts", "recipe", "vectors"}
    assert all(p["steered"]["continuation"] for p in cold["prompts"])
    assert set(cold["vectors"]) == set(VECTORS)
    assert cold["timing"]["vectors_s"] > 0
