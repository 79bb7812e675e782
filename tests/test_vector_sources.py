"""Every vector source against an independent computation.

Engine: `build_vectors`, batched and left-padded through nnsight. Reference: plain PyTorch forward
hooks on the Hugging Face modules (paths written out below, not taken from the engine's
adapters), each prompt run alone with no padding, and numpy for the arithmetic (means, SVD,
projections).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from recipe_engine.api import load_recipe
from recipe_engine.errors import RecipeError
from recipe_engine.format.model_spec import ModelSpec
from recipe_engine.format.recipe import Recipe
from recipe_engine.resolve.model_loader import LoadedModel, load_model
from recipe_engine.vectors import BuiltVector, build_vectors

Write = Callable[[str, str | bytes], Path]  # the `write` fixture of conftest

MODELS = {"gpt2": "builtin:tiny-random", "llama": "builtin:tiny-random-llama"}
# site -> (module path with {L}, port): where the README says each site is read.
PATHS: dict[str, dict[str, tuple[str, str]]] = {
    "gpt2": {
        "resid_pre": ("transformer.h.{L}", "input"),
        "resid_post": ("transformer.h.{L}", "output"),
        "mlp_out": ("transformer.h.{L}.mlp", "output"),
        "heads": ("transformer.h.{L}.attn.c_proj", "input"),
    },
    "llama": {
        "resid_pre": ("model.layers.{L}", "input"),
        "resid_post": ("model.layers.{L}", "output"),
        "mlp_out": ("model.layers.{L}.mlp", "output"),
        "heads": ("model.layers.{L}.self_attn.o_proj", "input"),
    },
}
N_LAYERS = 4
# Recipe layer per site, and the block it means (one negative layer, counted from the end).
SITE_LAYERS = {"resid_pre": (1, 1), "resid_post": (-1, 3), "mlp_out": (2, 2), "heads": (2, 2)}
POSITIONS: list[str | int] = ["last", "mean", 1, -2]

# Different lengths, so that the engine's batches are padded (3 to 37 tokens).
POSITIVE = [
    "I love this wonderful sunny morning",
    "Great",
    "Happy days are here again, my friend!",
    "so good",
]
NEGATIVE = ["Sad", "I hate this awful rainy evening", "Terrible news today", "bad."]
PCA_POSITIVE = [*POSITIVE, "What a lovely gift", "Joy"]
PCA_NEGATIVE = [*NEGATIVE, "What a horrid mess", "Pain and more pain"]

# Tiny models: intra-op threads only add synchronisation (10-100x slower on a busy box).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- the reference ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models() -> dict[str, LoadedModel]:
    return {family: load_model(ModelSpec(id=mid), Path(".")) for family, mid in MODELS.items()}


def capture(model: LoadedModel, family: str, site: str, layer: int, prompt: str) -> np.ndarray:
    """[T, D] activations of one prompt, run alone (no padding), read by a forward hook."""
    path, port = PATHS[family][site]
    module = dict(model.hf.named_modules())[path.format(L=layer)]
    seen: list[torch.Tensor] = []

    def pre(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        seen.append((args[0] if args else kwargs["hidden_states"]).detach().clone())

    def post(_module: Any, _args: Any, output: Any) -> None:
        seen.append((output[0] if isinstance(output, tuple) else output).detach().clone())

    handle = (
        module.register_forward_pre_hook(pre, with_kwargs=True)
        if port == "input"
        else module.register_forward_hook(post)
    )
    ids = torch.tensor([model.tokenizer(prompt)["input_ids"]])
    try:
        with torch.no_grad():
            model.hf(input_ids=ids)
    finally:
        handle.remove()
    assert len(seen) == 1
    out = seen[0][0].double().numpy()
    assert out.shape[0] == ids.shape[1]
    return out


def reduce(acts: np.ndarray, position: str | int) -> np.ndarray:
    if position == "last":
        return acts[-1]
    if position == "mean":
        return acts.mean(axis=0)
    assert isinstance(position, int)
    return acts[position]


def reference_rows(
    model: LoadedModel, family: str, site: str, layer: int, prompts: list[str], position: Any
) -> np.ndarray:
    return np.stack([reduce(capture(model, family, site, layer, p), position) for p in prompts])


def recipe(model_id: str, vectors: dict[str, Any], **run: Any) -> Recipe:
    return Recipe.model_validate(
        {
            "version": 1,
            "name": "vector-sources",
            "model": {"id": model_id},
            "vectors": vectors,
            "run": {"mode": "trace", "prompts": ["x"], **run},
        }
    )


def build(
    model: LoadedModel, model_id: str, vectors: dict[str, Any], **run: Any
) -> dict[str, BuiltVector]:
    return build_vectors(recipe(model_id, vectors, **run), model, None, list(vectors), cache=False)


def as_np(vector: BuiltVector) -> np.ndarray:
    assert vector.tensor.dtype == torch.float32
    return vector.tensor.double().numpy()


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def assert_close(actual: np.ndarray, expected: np.ndarray, atol: float = 1e-5) -> None:
    assert actual.shape == expected.shape
    err = float(np.abs(actual - expected).max())
    assert err <= atol, f"max abs error {err:.3g} > {atol}"


def vname(site: str, position: str | int) -> str:
    return f"{site}_{position}".replace("-", "m")


# -- contrastive mean_diff -------------------------------------------------------------------


@pytest.fixture(scope="module")
def mean_diff_vectors(models: dict[str, LoadedModel]) -> dict[str, dict[str, BuiltVector]]:
    """Every site x position at once per model (one build; the comparisons are parametrized)."""
    built = {}
    for family, model in models.items():
        specs = {
            vname(site, position): {
                "kind": "contrastive",
                "positive": POSITIVE,
                "negative": NEGATIVE,
                "layer": SITE_LAYERS[site][0],
                "site": site,
                "position": position,
                "method": "mean_diff",
            }
            for site in SITE_LAYERS
            for position in POSITIONS
        }
        built[family] = build(model, MODELS[family], specs)
    return built


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("site", list(SITE_LAYERS))
@pytest.mark.parametrize("family", list(MODELS))
def test_mean_diff_equals_reference(
    models: dict[str, LoadedModel],
    mean_diff_vectors: dict[str, dict[str, BuiltVector]],
    family: str,
    site: str,
    position: str | int,
) -> None:
    model = models[family]
    block = SITE_LAYERS[site][1]
    pos = reference_rows(model, family, site, block, POSITIVE, position)
    neg = reference_rows(model, family, site, block, NEGATIVE, position)
    built = mean_diff_vectors[family][vname(site, position)]
    assert_close(as_np(built), pos.mean(axis=0) - neg.mean(axis=0))
    prov = built.provenance
    assert prov["kind"] == "contrastive"
    assert (prov["layer"], prov["site"], prov["position"], prov["method"]) == (
        SITE_LAYERS[site][0],
        site,
        position,
        "mean_diff",
    )
    assert (prov["positive"], prov["negative"]) == (len(POSITIVE), len(NEGATIVE))


def test_mean_diff_sites_and_positions_differ(
    mean_diff_vectors: dict[str, dict[str, BuiltVector]],
) -> None:
    """The parameters are honoured: no two site/position combinations give the same vector."""
    for vectors in mean_diff_vectors.values():
        tensors = [v.tensor for v in vectors.values()]
        for i, a in enumerate(tensors):
            for b in tensors[i + 1 :]:
                assert not torch.allclose(a, b, atol=1e-4)


# -- contrastive PCA -------------------------------------------------------------------------


def first_pc(data: np.ndarray) -> np.ndarray:
    _, _, vh = np.linalg.svd(data, full_matrices=False)
    return vh[0]


@pytest.mark.parametrize("position", ["last", "mean"])
@pytest.mark.parametrize("family", list(MODELS))
def test_pca_methods_equal_numpy_svd(
    models: dict[str, LoadedModel], family: str, position: str
) -> None:
    model = models[family]
    common = {
        "kind": "contrastive",
        "positive": PCA_POSITIVE,
        "negative": PCA_NEGATIVE,
        "layer": 2,
        "site": "resid_post",
        "position": position,
        "paired": True,
    }
    built = build(
        model,
        MODELS[family],
        {
            "diff": {**common, "method": "pca_diff"},
            "center": {**common, "method": "pca_center"},
            "md": {**common, "method": "mean_diff"},
        },
    )
    pos = reference_rows(model, family, "resid_post", 2, PCA_POSITIVE, position)
    neg = reference_rows(model, family, "resid_post", 2, PCA_NEGATIVE, position)
    mean_diff = pos.mean(axis=0) - neg.mean(axis=0)
    assert_close(as_np(built["md"]), mean_diff)
    everything = np.concatenate([pos, neg])
    directions = {
        "diff": first_pc(pos - neg),  # paired differences, not centred
        "center": first_pc(everything - everything.mean(axis=0)),  # centred on the grand mean
    }
    for name, direction in directions.items():
        direction = direction if direction @ mean_diff >= 0 else -direction
        vector = as_np(built[name])
        assert abs(cos(vector, direction)) >= 0.9999, name
        assert vector @ mean_diff > 0, name  # points along mean_diff
        assert_close(vector, direction * (mean_diff @ direction))
        # not mean_diff under another name: the PCA direction is a different vector
        assert abs(cos(vector, mean_diff)) < 0.9999, name
        assert built[name].provenance["method"] == ("pca_" + name)
    # the two PCA flavours are different computations
    assert abs(cos(directions["diff"], directions["center"])) < 0.9999


# -- probe -----------------------------------------------------------------------------------


def probe_texts() -> list[tuple[str, int]]:
    rows = []
    for n in range(6, 30):  # 24 per class, 48 in all
        rows.append(("a" * n, 1))
        rows.append(("z" * n + "!", 0))
    return rows


@pytest.mark.parametrize("family", list(MODELS))
def test_probe_separates_a_separable_set(
    models: dict[str, LoadedModel], write: Write, family: str
) -> None:
    rows = probe_texts()
    data = write(
        "probe.jsonl", "".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows)
    )
    path = write(
        "probe.yaml",
        f"""\
version: 1
name: probe
model: {{id: "{MODELS[family]}"}}
vectors:
  p: {{kind: probe, data: probe.jsonl, layer: 2, site: resid_post, position: mean,
      test_fraction: 0.25, seed: 3}}
run: {{mode: trace, prompts: [x]}}
""",
    )
    loaded = load_recipe(path)
    model = models[family]
    built = build_vectors(loaded.recipe, model, loaded.document, ["p"], cache=False)["p"]
    prov = built.provenance
    assert prov["examples"] == len(rows)
    assert prov["test_accuracy"] is not None and prov["test_accuracy"] >= 0.95
    assert prov["train_accuracy"] >= 0.95
    import hashlib

    assert prov["data_sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    direction = as_np(built)
    assert np.linalg.norm(direction) == pytest.approx(1.0, abs=1e-5)
    acts = reference_rows(model, family, "resid_post", 2, [t for t, _ in rows], "mean")
    labels = np.array([y for _, y in rows])
    proj = acts @ direction
    ones, zeros = proj[labels == 1], proj[labels == 0]
    assert ones.mean() > zeros.mean()
    # nearly every class-1 example projects above nearly every class-0 example
    assert (ones[:, None] > zeros[None, :]).mean() >= 0.95


# -- mean_activation -------------------------------------------------------------------------


LONG = "The quick brown fox jumps over the lazy dog while it sleeps in the sun. " * 2
SHORT = ["a", "Hi", "xyz", "ok", "Q"]


@pytest.mark.parametrize("position", ["mean", "last"])
@pytest.mark.parametrize("family", list(MODELS))
def test_mean_activation_ignores_padding(
    models: dict[str, LoadedModel],
    monkeypatch: pytest.MonkeyPatch,
    family: str,
    position: str,
) -> None:
    import recipe_engine.vectors.build as build_module

    chunks: list[int] = []
    real = build_module.iter_activations

    def counting(*args: Any, **kwargs: Any) -> Any:
        for chunk in real(*args, **kwargs):
            chunks.append(chunk.shape[0])
            yield chunk

    monkeypatch.setattr(build_module, "iter_activations", counting)
    model = models[family]
    prompts = [LONG, *SHORT]
    spec = {"kind": "mean_activation", "prompts": prompts, "layer": 2, "site": "resid_post"}
    built = build(model, MODELS[family], {"m": {**spec, "position": position}}, batch_size=64)["m"]
    assert chunks == [len(prompts)]  # one batch: the short prompts were padded to ~140 tokens
    expected = reference_rows(model, family, "resid_post", 2, prompts, position).mean(axis=0)
    assert_close(as_np(built), expected)
    assert built.provenance["prompts"] == len(prompts)

    if position == "mean":
        # The check has teeth: averaging over the padded batch, pads included, is far off.
        tokens = model.tokenizer(prompts, return_tensors="pt", padding=True)
        assert tokens["attention_mask"].sum() < 0.5 * tokens["attention_mask"].numel()
        seen: list[torch.Tensor] = []
        block = dict(model.hf.named_modules())[PATHS[family]["resid_post"][0].format(L=2)]
        handle = block.register_forward_hook(
            lambda _m, _a, out: seen.append(out[0] if isinstance(out, tuple) else out)
        )
        try:
            with torch.no_grad():
                model.hf(**tokens)
        finally:
            handle.remove()
        naive = seen[0].double().mean(dim=(0, 1)).numpy()
        assert np.abs(naive - expected).max() > 1e-3


# -- activation ------------------------------------------------------------------------------


@pytest.mark.parametrize("family", list(MODELS))
def test_activation_positions(models: dict[str, LoadedModel], family: str) -> None:
    model = models[family]
    prompt = "Steering vectors, one prompt"
    base = {"kind": "activation", "prompt": prompt, "layer": 1, "site": "mlp_out"}
    built = build(
        model,
        MODELS[family],
        {
            "last": {**base, "position": "last"},
            "mean": {**base, "position": "mean"},
            "i3": {**base, "position": 3},
            "im5": {**base, "position": -5},
            "all": {**base, "position": "all"},
        },
    )
    acts = capture(model, family, "mlp_out", 1, prompt)
    assert_close(as_np(built["last"]), acts[-1])
    assert_close(as_np(built["mean"]), acts.mean(axis=0))
    assert_close(as_np(built["i3"]), acts[3])
    assert_close(as_np(built["im5"]), acts[-5])
    assert list(built["all"].tensor.shape) == [len(prompt), 64]  # [T, D], byte tokenizer
    assert_close(as_np(built["all"]), acts)
    assert built["all"].provenance["shape"] == [len(prompt), 64]


# -- random ----------------------------------------------------------------------------------


def test_random_vectors(models: dict[str, LoadedModel]) -> None:
    model = models["gpt2"]
    vectors = {
        "a": {"kind": "random", "seed": 3, "norm": 2.5},
        "same": {"kind": "random", "seed": 3, "norm": 2.5},
        "other": {"kind": "random", "seed": 4, "norm": 2.5},
        "short": {"kind": "random", "seed": 3, "dim": 10},
    }
    first = build(model, MODELS["gpt2"], vectors)
    again = build(model, MODELS["gpt2"], {"a": vectors["a"]})
    assert first["a"].tensor.shape == (64,)  # the model's hidden size by default
    assert float(first["a"].tensor.norm()) == pytest.approx(2.5, abs=1e-5)
    assert torch.equal(first["a"].tensor, first["same"].tensor)
    assert torch.equal(first["a"].tensor, again["a"].tensor)  # across builds, too
    assert abs(cos(as_np(first["a"]), as_np(first["other"]))) < 0.9
    assert first["short"].tensor.shape == (10,)
    assert float(first["short"].tensor.norm()) == pytest.approx(1.0, abs=1e-6)
    # Gaussian: no structure (not constant, signs mixed)
    values = first["a"].tensor
    assert (values > 0).any() and (values < 0).any()
    assert first["a"].provenance["seed"] == 3


# -- expr and normalize ----------------------------------------------------------------------


def test_expr_arithmetic(models: dict[str, LoadedModel]) -> None:
    model = models["gpt2"]
    built = build(
        model,
        MODELS["gpt2"],
        {
            "a": {"kind": "random", "seed": 1, "norm": 3.0},
            "b": {"kind": "random", "seed": 2, "norm": 0.5},
            "combo": {"kind": "expr", "expr": "unit(a) - 0.5 * b"},
            "along": {"kind": "expr", "expr": "proj(a, b)"},
            "across": {"kind": "expr", "expr": "reject(a, b)"},
            "scaled": {"kind": "expr", "expr": "(a + b) / 4 - -b"},
        },
    )
    a, b = as_np(built["a"]), as_np(built["b"])
    b_hat = b / np.linalg.norm(b)
    assert_close(as_np(built["combo"]), a / np.linalg.norm(a) - 0.5 * b)
    assert_close(as_np(built["along"]), (a @ b_hat) * b_hat)
    assert_close(as_np(built["across"]), a - (a @ b_hat) * b_hat)
    assert abs(cos(as_np(built["across"]), b)) < 1e-6
    assert_close(as_np(built["scaled"]), (a + b) / 4 + b)


def test_orthogonalize_against_one_vector(models: dict[str, LoadedModel]) -> None:
    model = models["gpt2"]
    built = build(
        model,
        MODELS["gpt2"],
        {
            "a": {"kind": "random", "seed": 1},
            "b": {"kind": "random", "seed": 2},
            "c": {"kind": "expr", "expr": "2 * a + b", "orthogonalize_against": ["b"]},
        },
    )
    a, b, c = as_np(built["a"]), as_np(built["b"]), as_np(built["c"])
    assert abs(cos(c, b)) < 1e-6
    b_hat = b / np.linalg.norm(b)
    raw = 2 * a + b
    assert_close(c, raw - (raw @ b_hat) * b_hat)
    assert np.linalg.norm(c) > 1.0  # the rest of the vector is kept


def test_orthogonalize_against_two_vectors(models: dict[str, LoadedModel]) -> None:
    model = models["gpt2"]
    built = build(
        model,
        MODELS["gpt2"],
        {
            "a": {"kind": "random", "seed": 1},
            "b": {"kind": "random", "seed": 2},
            "d": {"kind": "random", "seed": 3},
            "bc": {"kind": "expr", "expr": "b + a"},  # not orthogonal to b
            "c": {"kind": "expr", "expr": "a + d", "orthogonalize_against": ["b", "bc"]},
        },
    )
    c = as_np(built["c"])
    assert np.linalg.norm(c) > 0.1
    for other in ("b", "bc"):
        assert abs(cos(c, as_np(built[other]))) < 1e-6, other


def test_orthogonalizing_away_everything_is_an_error(models: dict[str, LoadedModel]) -> None:
    with pytest.raises(RecipeError) as info:
        build(
            models["gpt2"],
            MODELS["gpt2"],
            {
                "a": {"kind": "random", "seed": 1},
                "b": {"kind": "random", "seed": 2},
                "bc": {"kind": "expr", "expr": "b + a"},
                "c": {"kind": "expr", "expr": "a", "orthogonalize_against": ["b", "bc"]},
            },
        )
    assert info.value.diagnostics[0].code == "vector-degenerate"


def test_normalize_unit(models: dict[str, LoadedModel]) -> None:
    model = models["gpt2"]
    contrastive = {
        "kind": "contrastive",
        "positive": POSITIVE,
        "negative": NEGATIVE,
        "layer": 2,
        "site": "resid_post",
    }
    built = build(
        model,
        MODELS["gpt2"],
        {
            "raw": contrastive,
            "unit": {**contrastive, "normalize": "unit"},
            "r": {"kind": "random", "seed": 5, "norm": 7.0, "normalize": "unit"},
            "e": {"kind": "expr", "expr": "3 * raw", "normalize": "unit"},
        },
    )
    raw = as_np(built["raw"])
    assert abs(np.linalg.norm(raw) - 1.0) > 0.1  # so that unit norm is a change
    for name in ("unit", "r", "e"):
        assert np.linalg.norm(as_np(built[name])) == pytest.approx(1.0, abs=1e-6), name
    assert_close(as_np(built["unit"]), raw / np.linalg.norm(raw))
    assert_close(as_np(built["e"]), raw / np.linalg.norm(raw))


# -- file ------------------------------------------------------------------------------------


FILE_RECIPE = """\
version: 1
name: file-vectors
model: {id: "builtin:tiny-random"}
vectors:
  f1: {kind: file, path: vecs/two.safetensors, key: first_vector}
  f2: {kind: file, path: vecs/two.safetensors, key: second_vector}
  only: {kind: file, path: vecs/one.safetensors}
run: {mode: trace, prompts: [x]}
"""


def header_length(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[:8], "little")


def test_file_vector_loads_bit_identical(models: dict[str, LoadedModel], write: Write) -> None:
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(11)
    tensors = {
        "first_vector": torch.randn(64, generator=generator) * 1e-3,
        "second_vector": torch.randn(64, generator=generator) * 1e4,
    }
    tensors["second_vector"][0] = float.fromhex("0x1.fffffep-1")  # every mantissa bit set
    tensors["second_vector"][1] = float.fromhex("0x1p-149")  # the smallest subnormal
    folder = write("vecs/.keep", "").parent
    save_file(tensors, str(folder / "two.safetensors"))
    save_file({"only": tensors["first_vector"]}, str(folder / "one.safetensors"))
    for name in ("two", "one"):  # see test_file_vector_header_length_128
        assert header_length(folder / f"{name}.safetensors") % 256 != 0x80
    loaded = load_recipe(write("file.yaml", FILE_RECIPE))
    built = build_vectors(loaded.recipe, models["gpt2"], loaded.document, None, cache=False)
    assert built == {}  # no intervention uses them: nothing is built by default
    built = build_vectors(
        loaded.recipe, models["gpt2"], loaded.document, ["f1", "f2", "only"], cache=False
    )
    for name, key in (("f1", "first_vector"), ("f2", "second_vector"), ("only", "first_vector")):
        got = built[name].tensor
        assert got.dtype == torch.float32
        assert got.numpy().tobytes() == tensors[key].numpy().tobytes(), name
    assert built["f2"].provenance["key"] == "second_vector"


def test_file_vector_header_length_128(models: dict[str, LoadedModel], write: Write) -> None:
    from safetensors.torch import save_file

    folder = write("vecs/.keep", "").parent
    tensors = {"first": torch.arange(64.0), "second": -torch.arange(64.0)}
    save_file(tensors, str(folder / "two.safetensors"))
    assert header_length(folder / "two.safetensors") == 128
    save_file({"only": tensors["first"]}, str(folder / "one.safetensors"))
    text = FILE_RECIPE.replace("_vector", "")
    loaded = load_recipe(write("file.yaml", text))
    built = build_vectors(loaded.recipe, models["gpt2"], loaded.document, ["f1", "f2"], cache=False)
    assert torch.equal(built["f1"].tensor, tensors["first"])
    assert torch.equal(built["f2"].tensor, tensors["second"])


# -- `position: mean` and the tokenizer's own markers -----------------------------------------


def test_mean_leaves_out_the_leading_marker_the_tokenizer_adds() -> None:
    """The embedded tokenizer prepends <|endoftext|>; `mean` averages the words only."""
    model = load_model(ModelSpec(id="builtin:tiny-sentiment"), Path("."))
    bos = model.tokenizer.convert_tokens_to_ids("<|endoftext|>")
    prompts = ["The soup was warm.", "I think the movie was long and the actors were tired", "Hi"]
    rows = []
    for prompt in prompts:
        assert model.tokenizer(prompt)["input_ids"][0] == bos  # the marker is really there
        acts = capture(model, "gpt2", "resid_post", 0, prompt)
        rows.append(acts[1:].mean(axis=0))
    built = build(
        model,
        "builtin:tiny-sentiment",
        {"m": {"kind": "mean_activation", "prompts": prompts, "layer": 0, "site": "resid_post"}},
        batch_size=3,  # one padded batch: padding and the marker must both stay out
    )
    assert_close(as_np(built["m"]), np.stack(rows).mean(axis=0))
    # ...and an index still counts the marker: index 0 is the marker itself
    first = build(
        model,
        "builtin:tiny-sentiment",
        {
            "c": {
                "kind": "contrastive",
                "positive": prompts[:1],
                "negative": prompts[1:2],
                "layer": 0,
                "site": "resid_post",
                "position": 0,
            }
        },
    )
    assert float(np.abs(as_np(first["c"])).max()) < 1e-5  # the marker reads the same in both


def test_mean_of_a_prompt_made_only_of_added_tokens_keeps_them() -> None:
    from recipe_engine.vectors.extraction import mean_weights

    real = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1]])
    added = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    weights = mean_weights(real, added)
    expected = torch.tensor([[0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5]])
    assert torch.allclose(weights, expected)
