"""Where a recipe's model comes from: local folders, the hub cache (never the network), the
in-process model cache, trust_remote_code and devices."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers

import recipe_engine
from recipe_engine import EnvironmentFailure, compile_recipe, load_recipe, run_recipe
from recipe_engine.cli.main import main
from recipe_engine.execute.runner import trace_pass
from recipe_engine.format.model_spec import ModelSpec
from recipe_engine.plan import Plan
from recipe_engine.resolve import model_loader
from recipe_engine.resolve.builtin_build import build_builtin, byte_tokenizer
from recipe_engine.resolve.model_loader import clear_model_cache, load_model
from tests.conftest import RECIPES

pytestmark = pytest.mark.slow

Write = Callable[[str, str | bytes], Path]  # the `write` fixture of conftest
PROMPTS = ["The weather today is", "hi", "I think the movie was really"]

LOCAL_RECIPE = """\
version: 1
name: local
model: {{id: {model_id}{extra}}}
vectors:
  noise: {{kind: random, seed: 3, norm: 4.0}}
interventions:
  - {{vector: noise, op: add, layers: [1, 2], strength: 1.0}}
run:
  mode: trace
  prompts: {prompts}
report:
  top_tokens: 100
  metrics:
    - {{kind: logit_diff, positive: [a, e], negative: [x, z]}}
    - {{kind: kl_baseline}}
"""


def local_recipe(model_id: str, extra: str = "") -> str:
    return LOCAL_RECIPE.format(model_id=model_id, extra=extra, prompts=PROMPTS)


@pytest.fixture(autouse=True)
def fresh_model_cache() -> Iterator[None]:
    """Each test starts with an empty model cache; the other modules' cache is put back after."""
    saved = dict(model_loader._CACHE)
    clear_model_cache()
    yield
    clear_model_cache()
    model_loader._CACHE.update(saved)


@pytest.fixture(scope="module")
def in_memory() -> tuple[Any, Any]:
    """The tiny GPT-2 (the builtin's weights) and the byte tokenizer, in memory."""
    model, tokenizer = build_builtin("tiny-random")
    return model, tokenizer


@pytest.fixture(scope="module")
def local_repo(tmp_path_factory: pytest.TempPathFactory, in_memory: tuple[Any, Any]) -> Path:
    """A repository holding `tiny/`: the in-memory model saved with save_pretrained."""
    root = tmp_path_factory.mktemp("local-model-repo")
    (root / ".git").mkdir()
    model, _ = in_memory
    model.save_pretrained(root / "tiny")
    byte_tokenizer().save_pretrained(root / "tiny")
    return root


def _next_logits(model: Any, tokenizer: Any, prompts: list[str]) -> torch.Tensor:
    rows = []
    with torch.no_grad():
        for prompt in prompts:
            encoded = tokenizer(prompt, return_tensors="pt")
            rows.append(model(**encoded).logits[0, -1].float())
    return torch.stack(rows)


# --- a local folder ---------------------------------------------------------------------------


def test_local_folder_gives_the_in_memory_models_logits(
    local_repo: Path, in_memory: tuple[Any, Any]
) -> None:
    path = local_repo / "local.yaml"
    path.write_text(local_recipe("./tiny"), encoding="utf-8")
    model, tokenizer = in_memory
    expected = _next_logits(model, tokenizer, PROMPTS)

    report = run_recipe(path)
    assert report.model["id"] == "./tiny"
    assert [p.prompt for p in report.prompts] == PROMPTS
    probs = torch.softmax(expected, dim=-1)
    for row, outcome in enumerate(report.prompts):
        assert outcome.baseline is not None
        top = probs[row].topk(100)
        assert [tid for _, tid, _ in outcome.baseline.top_tokens] == top.indices.tolist()
        got = torch.tensor([p for _, _, p in outcome.baseline.top_tokens])
        torch.testing.assert_close(got, top.values, atol=1e-6, rtol=0)
        assert outcome.steered.top_tokens != outcome.baseline.top_tokens  # the add did act

    # logit_diff is computed from raw logits: same numbers from the in-memory model
    pos = [tokenizer(w, add_special_tokens=False)["input_ids"][0] for w in ("a", " a", "e", " e")]
    neg = [tokenizer(w, add_special_tokens=False)["input_ids"][0] for w in ("x", " x", "z", " z")]
    diff = (expected[:, sorted(set(pos))].mean(-1) - expected[:, sorted(set(neg))].mean(-1)).mean()
    assert report.metric("logit_diff").baseline == pytest.approx(float(diff), abs=1e-5)

    # the raw next-token logits of the loaded model, through the engine's own trace pass
    compiled = compile_recipe(path)
    assert compiled.model.identity.startswith(str((local_repo / "tiny").resolve()))
    got_logits = trace_pass(compiled.model, Plan(), PROMPTS, batch_size=8).next_logits
    torch.testing.assert_close(got_logits, expected, atol=1e-5, rtol=0)


def test_local_folder_steers_like_the_builtin(local_repo: Path) -> None:
    """Same weights, same recipe: the folder and builtin:tiny-random give the same report."""
    (local_repo / "from-folder.yaml").write_text(local_recipe("./tiny"), encoding="utf-8")
    (local_repo / "from-builtin.yaml").write_text(
        local_recipe("builtin:tiny-random"), encoding="utf-8"
    )
    folder = run_recipe(local_repo / "from-folder.yaml").to_json()
    builtin = run_recipe(local_repo / "from-builtin.yaml").to_json()
    assert folder["prompts"] == builtin["prompts"]
    assert folder["metrics"] == builtin["metrics"]
    assert folder["plan"] == builtin["plan"]
    assert folder["metrics"][1]["steered"] > 0  # kl_baseline: the steering did something


def test_local_folder_relative_to_the_recipe(local_repo: Path) -> None:
    """`./tiny` is relative to the recipe's folder, not the working directory."""
    sub = local_repo / "nested" / "deeper"
    sub.mkdir(parents=True, exist_ok=True)
    (sub / "r.yaml").write_text(local_recipe("../../tiny"), encoding="utf-8")
    compiled = compile_recipe(sub / "r.yaml")
    assert compiled.model.identity.startswith(str((local_repo / "tiny").resolve()) + "@")


# --- the hub cache: never the network ---------------------------------------------------------

HUB_ID = "recipe-engine-tests/definitely-not-cached"


@pytest.fixture
def hub_recipe(
    write: Write, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path_factory.mktemp("empty-hub-cache")))
    return write("hub.yaml", local_recipe(HUB_ID))


def _assert_not_cached_message(exc: BaseException) -> None:
    message = str(exc)
    assert HUB_ID in message
    assert "never downloads" in message


def test_uncached_hub_model_is_an_environment_failure_when_loading(hub_recipe: Path) -> None:
    loaded = load_recipe(hub_recipe, check_model=False)
    with pytest.raises(EnvironmentFailure) as info:
        compile_recipe(loaded)
    _assert_not_cached_message(info.value)


def test_uncached_hub_model_is_an_environment_failure(hub_recipe: Path) -> None:
    with pytest.raises(EnvironmentFailure) as info:
        run_recipe(hub_recipe)
    _assert_not_cached_message(info.value)


def test_uncached_hub_model_run_exits_3(hub_recipe: Path) -> None:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(["run", str(hub_recipe)])
    assert HUB_ID in err.getvalue() and "never downloads" in err.getvalue()
    assert code == 3


# --- trust_remote_code, local_files_only ------------------------------------------------------


@pytest.fixture
def recorded_kwargs(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[dict[str, Any]]]:
    """Record the kwargs of the transformers loaders (which still do the real loading)."""
    calls: dict[str, list[dict[str, Any]]] = {"model": [], "tokenizer": []}
    real_model = transformers.AutoModelForCausalLM.from_pretrained
    real_tokenizer = transformers.AutoTokenizer.from_pretrained

    def model_loader_(source: Any, *args: Any, **kwargs: Any) -> Any:
        calls["model"].append(kwargs)
        return real_model(source, *args, **kwargs)

    def tokenizer_loader(source: Any, *args: Any, **kwargs: Any) -> Any:
        calls["tokenizer"].append(kwargs)
        return real_tokenizer(source, *args, **kwargs)

    monkeypatch.setattr(
        transformers.AutoModelForCausalLM, "from_pretrained", staticmethod(model_loader_)
    )
    monkeypatch.setattr(
        transformers.AutoTokenizer, "from_pretrained", staticmethod(tokenizer_loader)
    )
    return calls


@pytest.mark.parametrize(
    ("extra", "passed"),
    [("", False), (", trust_remote_code: false", False), (", trust_remote_code: true", True)],
    ids=["unset", "false", "true"],
)
def test_trust_remote_code_only_when_the_recipe_sets_it(
    local_repo: Path,
    recorded_kwargs: dict[str, list[dict[str, Any]]],
    extra: str,
    passed: bool,
) -> None:
    path = local_repo / "trust.yaml"
    path.write_text(local_recipe("./tiny", extra), encoding="utf-8")
    compile_recipe(path)
    assert len(recorded_kwargs["model"]) == 1
    assert len(recorded_kwargs["tokenizer"]) == 1
    for kwargs in (*recorded_kwargs["model"], *recorded_kwargs["tokenizer"]):
        assert kwargs.get("local_files_only") is True  # never the network
        # always passed explicitly: unset, transformers would ask on stdin (see model_loader)
        assert kwargs.get("trust_remote_code") is passed


def test_trust_remote_code_from_a_fragment_is_refused(local_repo: Path) -> None:
    (local_repo / "_trusting.yaml").write_text(
        "model: {id: ./tiny, trust_remote_code: true}\n", encoding="utf-8"
    )
    path = local_repo / "sneaky.yaml"
    path.write_text(
        local_recipe("./tiny").replace("model: {id: ./tiny}", "include: _trusting.yaml"),
        encoding="utf-8",
    )
    with pytest.raises(recipe_engine.RecipeError):
        run_recipe(path)


# --- the model cache --------------------------------------------------------------------------


def test_cache_returns_the_same_loaded_model_for_the_same_spec(
    local_repo: Path, tmp_path: Path
) -> None:
    spec = ModelSpec(id="builtin:tiny-random")
    first = load_model(spec, tmp_path)
    assert load_model(ModelSpec(id="builtin:tiny-random"), local_repo) is first
    assert load_model(ModelSpec(id="builtin:tiny-random", dtype="float32"), tmp_path) is first
    # a different spec is a different model
    half = load_model(ModelSpec(id="builtin:tiny-random", dtype="bfloat16"), tmp_path)
    assert half is not first
    assert next(half.hf.parameters()).dtype == torch.bfloat16
    assert next(first.hf.parameters()).dtype == torch.float32
    assert load_model(ModelSpec(id="builtin:tiny-random-llama"), tmp_path) is not first

    # local folders: keyed on the resolved folder, not on how the recipe spells it
    folder = load_model(ModelSpec(id="./tiny"), local_repo)
    sub = local_repo / "sub"
    sub.mkdir(exist_ok=True)
    assert load_model(ModelSpec(id="../tiny"), sub) is folder
    assert load_model(ModelSpec(id=str(local_repo / "tiny")), tmp_path) is folder
    assert folder is not first

    # through the API: two example recipes on the same model share it
    a = compile_recipe(RECIPES / "activation-addition.yaml")
    b = compile_recipe(RECIPES / "head-ablation.yaml")
    assert a.model is b.model


def test_same_relative_id_in_two_repos_is_two_models(
    local_repo: Path, tmp_path: Path, in_memory: tuple[Any, Any]
) -> None:
    """`./tiny` of two different recipes' folders must not share a cache entry."""
    model, _ = in_memory
    other = tmp_path / "other"
    (other / ".git").mkdir(parents=True)
    changed = type(model)(model.config)  # same shape, other (random) weights
    changed.save_pretrained(other / "tiny")
    byte_tokenizer().save_pretrained(other / "tiny")
    (local_repo / "one.yaml").write_text(local_recipe("./tiny"), encoding="utf-8")
    (other / "two.yaml").write_text(local_recipe("./tiny"), encoding="utf-8")
    one = compile_recipe(local_repo / "one.yaml").model
    two = compile_recipe(other / "two.yaml").model
    assert one is not two
    w_one = one.hf.transformer.wte.weight
    w_two = two.hf.transformer.wte.weight
    assert not torch.equal(w_one, w_two)


# --- devices ----------------------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_device_without_cuda_is_an_environment_failure(write: Write, device: str) -> None:
    path = write(
        "cuda.yaml",
        local_recipe("builtin:tiny-random").replace(
            "{id: builtin:tiny-random}", f"{{id: builtin:tiny-random, device: '{device}'}}"
        ),
    )
    with pytest.raises(EnvironmentFailure) as info:
        run_recipe(path)
    assert device in str(info.value)
    assert "CUDA" in str(info.value)

    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(["run", str(path)])
    assert code == 3
    (line,) = err.getvalue().strip().splitlines()
    assert line.startswith("steer: error: ") and device in line
