"""The vector cache, vector files (`steer vectors build`) and `steer vectors inspect`.

Cache: a second build extracts nothing; a prompt, layer or model change is a new key; corrupt
entries are rebuilt; two processes can share one cache folder. Files: one tensor per vector with
provenance, byte-identical rebuilds, read back by `kind: file` with identical logits, atomic
(no partial file on failure). Inspect: norms, cosines and token effects against an independent
computation; a pickle is refused, never unpickled.

Most CLI calls run `main()` in this process (the model is built once); the process-level checks
(two builders at once, exit status of a refused pickle) run `python -m recipe_engine`.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open

import recipe_engine
from recipe_engine import compile_recipe, run_recipe
from recipe_engine.api import load_recipe
from recipe_engine.cli.main import main
from recipe_engine.execute.runner import trace_pass
from recipe_engine.format.model_spec import ModelSpec
from recipe_engine.resolve.model_loader import LoadedModel, load_model
from recipe_engine.vectors import build_vectors
from recipe_engine.vectors.cache import VectorCache

Write = Callable[[str, str | bytes], Path]  # the `write` fixture of conftest
HEX64 = r"^[0-9a-f]{64}$"

# Tiny models: intra-op threads only add synchronisation (10-100x slower on a busy box).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default cache (CLI, run_recipe) in a folder of this test's own."""
    folder = tmp_path / "default-cache"
    monkeypatch.setenv("STEER_CACHE_DIR", str(folder))
    monkeypatch.delenv("STEER_NO_CACHE", raising=False)
    return folder


@pytest.fixture(scope="module")
def gpt2() -> LoadedModel:
    return load_model(ModelSpec(id="builtin:tiny-random"), Path("."))


@pytest.fixture
def extractions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the vectors the engine extracts activations for (one entry per call)."""
    from recipe_engine.vectors import build as build_module

    calls: list[str] = []
    real = build_module.iter_activations

    def counting(model: Any, prompts: Any, **kwargs: Any) -> Any:
        calls.append(f"layer{kwargs['layer']}")
        return real(model, prompts, **kwargs)

    monkeypatch.setattr(build_module, "iter_activations", counting)
    return calls


def cli(*args: str | Path) -> int:
    return main([str(a) for a in args])


def entries(root: Path) -> list[Path]:
    return sorted(root.rglob("*.safetensors"))


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and (".tmp" in p.name or p.name[0] == ".")]


# -- cache -----------------------------------------------------------------------------------

CACHE_RECIPE = """\
version: 1
name: cached
model: {id: "MODEL"}
vectors:
  v:
    kind: contrastive
    positive: [I love it, Wonderful day, so good]
    negative: [I hate it, Awful day, so bad]
    layer: LAYER
    site: resid_post
    description: DESCRIPTION
  m: {kind: mean_activation, prompts: {file: prompts.txt}, layer: 1, site: mlp_out}
  a: {kind: activation, prompt: one single prompt, layer: 2, position: mean}
  e: {kind: expr, expr: "unit(v) + m"}
run: {mode: trace, prompts: [x]}
"""


def cache_recipe(
    write: Write,
    *,
    model: str = "builtin:tiny-random",
    layer: int = 2,
    description: str = "a direction",
    positive: str = "I love it",
    prompts: str = "first prompt\nsecond, longer prompt\nthird\n",
) -> Any:
    text = (
        CACHE_RECIPE.replace("MODEL", model)
        .replace("LAYER", str(layer))
        .replace("DESCRIPTION", description)
        .replace("[I love it,", f"[{positive},")
    )
    write("prompts.txt", prompts)
    return load_recipe(write("cached.yaml", text))


def build(loaded: Any, cache: VectorCache | bool, names: list[str], model: Any = None) -> Any:
    model = model or load_model(loaded.recipe.model, loaded.model_dir)
    return build_vectors(loaded.recipe, model, loaded.document, names, cache=cache)


def test_second_build_extracts_nothing(
    write: Write, tmp_path: Path, extractions: list[str]
) -> None:
    loaded = cache_recipe(write)
    root = tmp_path / "cache"
    first_cache = VectorCache(root)
    first = build(loaded, first_cache, ["v", "m", "a", "e"])
    assert len(extractions) == 4  # v: positive + negative, m, a (e is arithmetic)
    assert (first_cache.hits, first_cache.misses) == (0, 3)
    assert len(entries(root)) == 3
    assert not any(v.cached for v in first.values())

    extractions.clear()
    second_cache = VectorCache(root)  # a fresh object: what is on disk is what counts
    second = build(loaded, second_cache, ["v", "m", "a", "e"])
    assert extractions == []
    assert (second_cache.hits, second_cache.misses, second_cache.rebuilt) == (3, 0, 0)
    assert [n for n, v in second.items() if v.cached] == ["v", "m", "a"]
    for name in ("v", "m", "a", "e"):
        assert torch.equal(first[name].tensor, second[name].tensor), name
        assert second[name].tensor.dtype == torch.float32
    assert second["v"].provenance["positive"] == 3
    assert second["v"].provenance["cache_key"] == first["v"].provenance["cache_key"]


CHANGES: dict[str, tuple[dict[str, Any], str, bool]] = {
    # name: (change, vector rebuilt, extracts again?)
    "prompt": ({"positive": "I adore it"}, "v", True),
    "prompt-file": ({"prompts": "first prompt\nsecond, longer prompt\nthird!\n"}, "m", True),
    "layer": ({"layer": 1}, "v", True),
    "model": ({"model": "builtin:tiny-random-llama"}, "v", True),
    "description-only": ({"description": "another text"}, "v", False),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_key_follows_the_data(
    write: Write, tmp_path: Path, extractions: list[str], change: str
) -> None:
    edit, name, extracts = CHANGES[change]
    cache = VectorCache(tmp_path / "cache")
    before = build(cache_recipe(write), cache, [name])[name]
    assert extractions
    extractions.clear()
    after = build(cache_recipe(write, **edit), cache, [name])[name]
    if extracts:
        assert extractions, f"{change}: served from the cache"
        assert not after.cached
        assert after.provenance["cache_key"] != before.provenance["cache_key"]
        assert not torch.equal(after.tensor, before.tensor)
        assert len(entries(tmp_path / "cache")) == 2
    else:
        assert extractions == []
        assert after.cached and torch.equal(after.tensor, before.tensor)


def _corrupt(path: Path, how: str) -> None:
    raw = path.read_bytes()
    if how == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "truncate-data":
        path.write_bytes(raw[:-4])  # the header intact, the last float cut off
    elif how == "flip-data":
        start = 8 + int.from_bytes(raw[:8], "little")
        data = bytearray(raw)
        data[start + 9] ^= 0x10  # a mantissa bit of the third float
        path.write_bytes(bytes(data))
    elif how == "garbage":
        path.write_bytes(b"this is not a safetensors file\n" * 3)
    elif how == "empty":
        path.write_bytes(b"")
    else:
        raise ValueError(how)


@pytest.mark.parametrize("how", ["truncate", "truncate-data", "flip-data", "garbage", "empty"])
def test_corrupt_entry_is_deleted_and_rebuilt(
    write: Write, tmp_path: Path, extractions: list[str], how: str
) -> None:
    from safetensors.torch import load

    loaded = cache_recipe(write)
    root = tmp_path / "cache"
    original = build(loaded, VectorCache(root), ["v"])["v"]
    [entry] = entries(root)
    _corrupt(entry, how)
    if how == "flip-data":  # safetensors alone would load it: only the checksum can tell
        assert not torch.equal(load(entry.read_bytes())["vector"], original.tensor)
    extractions.clear()
    cache = VectorCache(root)
    rebuilt = build(loaded, cache, ["v"])["v"]
    assert len(extractions) == 2, "the corrupt entry was used"
    assert (cache.hits, cache.rebuilt) == (0, 1)
    assert not rebuilt.cached
    assert torch.equal(rebuilt.tensor, original.tensor)
    # the entry on disk is whole again, and served
    assert entries(root) == [entry]
    again = VectorCache(root)
    assert torch.equal(build(loaded, again, ["v"])["v"].tensor, original.tensor)
    assert (again.hits, again.rebuilt) == (1, 0)


def test_wrapped_models_do_not_share_cache_entries(write: Write, tmp_path: Path) -> None:
    from recipe_engine.resolve.builtin_build import build_builtin
    from recipe_engine.resolve.model_loader import wrap_model

    loaded = cache_recipe(write)
    hf_a, tokenizer_a = build_builtin("tiny-random")
    hf_b, tokenizer_b = build_builtin("tiny-random")
    with torch.no_grad():
        for parameter in hf_b.parameters():
            parameter.mul_(1.5)  # another model: other weights
    model_a, model_b = wrap_model(hf_a, tokenizer_a), wrap_model(hf_b, tokenizer_b)
    uncached = build(loaded, False, ["v"], model_b)["v"].tensor
    cache = VectorCache(tmp_path / "cache")
    first = build(loaded, cache, ["v"], model_a)["v"].tensor
    assert not torch.equal(first, uncached)
    second = build(loaded, cache, ["v"], model_b)["v"].tensor
    assert torch.equal(second, uncached), "model B was given model A's vector"


def test_two_processes_share_one_cache(write: Write, tmp_path: Path, gpt2: LoadedModel) -> None:
    loaded = cache_recipe(write)
    root = tmp_path / "shared-cache"
    env = {
        **os.environ,
        "STEER_CACHE_DIR": str(root),
        "OMP_NUM_THREADS": "1",
        "NO_COLOR": "1",
        "HF_HUB_OFFLINE": "1",
    }
    recipe = str(loaded.document.path)
    outs = [tmp_path / f"out{i}.safetensors" for i in range(2)]
    command = [sys.executable, "-m", "recipe_engine", "vectors", "build", recipe, "--out"]
    procs = [
        subprocess.Popen(
            [*command, str(out), "--only", "v", "m", "a"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for out in outs
    ]
    results = [(p.wait(timeout=240), *p.communicate()) for p in procs]
    for code, stdout, stderr in results:
        assert code == 0, stderr
        assert "wrote" in stdout
    assert len(entries(root)) == 3  # one entry per extracted vector, not one per process
    assert leftovers(root) == []
    assert leftovers(tmp_path) == []
    expected = build(loaded, False, ["v", "m", "a"], gpt2)
    cache = VectorCache(root)
    hit = build(loaded, cache, ["v", "m", "a"], gpt2)
    assert (cache.hits, cache.rebuilt) == (3, 0)  # every entry is whole
    for out in outs:
        with safe_open(str(out), framework="pt") as handle:
            for name in ("v", "m", "a"):
                assert torch.allclose(handle.get_tensor(name), expected[name].tensor, atol=1e-6)
                assert torch.equal(handle.get_tensor(name), hit[name].tensor)


# -- steer vectors build ---------------------------------------------------------------------

POS_LINES = ["I love this", "What a wonderful day", "so good", "Great work, thanks!"]
NEG_LINES = ["I hate this", "What an awful day", "so bad", "Terrible work, sorry."]
BUILD_RECIPE = """\
version: 1
name: built-vectors
model: {id: "builtin:tiny-random"}
vectors:
  v:
    kind: contrastive
    positive: {file: data/pos.txt}
    negative: {file: data/neg.txt}
    layer: 1
    site: resid_post
    position: mean
    method: mean_diff
  pc:
    kind: contrastive
    positive: {file: data/pos.txt}
    negative: {file: data/neg.txt}
    layer: 1
    paired: true
    method: pca_diff
  m: {kind: mean_activation, prompts: [a, bb, cccc], layer: 2, site: mlp_out, position: last}
  r: {kind: random, seed: 4, norm: 2.0}
  e: {kind: expr, expr: "2 * v"}
  n: {kind: expr, expr: "-v"}
interventions:
  - {vector: v, op: add, layers: 1, site: resid_post, strength: 8.0}
run:
  mode: trace
  prompts: [The weather today is, "My opinion of it:", Hi]
report:
  top_tokens: 20
  metrics: [{kind: kl_baseline}]
"""


@pytest.fixture
def build_recipe(write: Write) -> Path:
    write("data/pos.txt", "\n".join(POS_LINES) + "\n")
    write("data/neg.txt", "\n".join(NEG_LINES) + "\n")
    return write("built.yaml", BUILD_RECIPE)


def read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as handle:
        return {k: handle.get_tensor(k) for k in handle.keys()}, dict(handle.metadata())  # noqa: SIM118


def test_build_writes_every_vector_with_provenance(
    build_recipe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "vectors.safetensors"
    assert cli("vectors", "build", build_recipe, "--out", out) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    tensors, meta = read(out)
    assert set(tensors) == {"v", "pc", "m", "r", "e", "n"}
    loaded = load_recipe(build_recipe)
    expected = build(loaded, False, list(tensors))
    for name, tensor in tensors.items():
        assert tensor.dtype == torch.float32 and tensor.shape == (64,)
        assert torch.equal(tensor, expected[name].tensor), name

    assert meta["format"] == "recipe-engine.vectors/1"
    assert meta["engine_version"] == recipe_engine.__version__
    assert meta["recipe"] == "built-vectors"
    assert meta["recipe_sha256"] == hashlib.sha256(build_recipe.read_bytes()).hexdigest()
    assert meta["model"] == "builtin:tiny-random"
    prov = json.loads(meta["vectors"])
    assert set(prov) == set(tensors)
    v = prov["v"]
    assert (v["kind"], v["layer"], v["site"], v["position"], v["method"]) == (
        "contrastive",
        1,
        "resid_post",
        "mean",
        "mean_diff",
    )
    assert (v["positive"], v["negative"]) == (len(POS_LINES), len(NEG_LINES))
    assert set(v["data_sha256"]) == {"positive", "negative"}
    for digest in v["data_sha256"].values():
        assert len(digest) == 64 and int(digest, 16) >= 0
    assert v["data_sha256"]["positive"] != v["data_sha256"]["negative"]
    assert v["norm"] == pytest.approx(float(tensors["v"].norm()), abs=1e-5)
    assert prov["pc"]["method"] == "pca_diff" and prov["pc"]["paired"] is True
    assert prov["pc"]["data_sha256"] == v["data_sha256"]  # same files, same hashes
    m = prov["m"]
    assert (m["kind"], m["layer"], m["site"], m["position"], m["prompts"]) == (
        "mean_activation",
        2,
        "mlp_out",
        "last",
        3,
    )
    assert len(m["data_sha256"]) == 64
    assert (prov["r"]["kind"], prov["r"]["seed"]) == ("random", 4)
    assert (prov["e"]["kind"], prov["e"]["expr"]) == ("expr", "2 * v")


def _three_builds(
    build_recipe: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> list[Path]:
    """Fresh, then from the cache, then fresh again in another cache folder."""
    outs = [tmp_path / f"{n}.safetensors" for n in ("a", "b", "c")]
    assert cli("vectors", "build", build_recipe, "--out", outs[0]) == 0
    assert "(cache)" not in capsys.readouterr().out
    assert cli("vectors", "build", build_recipe, "--out", outs[1]) == 0
    log = capsys.readouterr().out
    assert "v: shape [64], norm" in log and "(cache)" in log
    monkeypatch.setenv("STEER_CACHE_DIR", str(tmp_path / "another-cache"))
    assert cli("vectors", "build", build_recipe, "--out", outs[2]) == 0
    return outs


def test_build_twice_same_content(
    build_recipe: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tensors, meta), *others = (
        read(p) for p in _three_builds(build_recipe, tmp_path, monkeypatch, capsys)
    )
    for other_tensors, other_meta in others:
        assert other_meta == meta
        assert other_tensors.keys() == tensors.keys()
        for name, tensor in tensors.items():
            assert other_tensors[name].numpy().tobytes() == tensor.numpy().tobytes(), name


def test_build_is_byte_identical(
    build_recipe: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first, second, third = _three_builds(build_recipe, tmp_path, monkeypatch, capsys)
    assert first.read_bytes() == second.read_bytes() == third.read_bytes()


FILE_RECIPE = """\
version: 1
name: from-file
model: {id: "builtin:tiny-random"}
vectors:
  v: {kind: file, path: shared/vectors.safetensors, key: v}
interventions:
  - {vector: v, op: add, layers: 1, site: resid_post, strength: 8.0}
run:
  mode: trace
  prompts: [The weather today is, "My opinion of it:", Hi]
report:
  top_tokens: 20
  metrics: [{kind: kl_baseline}]
"""


def test_file_vector_reproduces_the_recipe_that_built_it(
    build_recipe: Path, write: Write, repo_dir: Path
) -> None:
    out = repo_dir / "shared" / "vectors.safetensors"
    assert cli("vectors", "build", build_recipe, "--out", out) == 0
    original = compile_recipe(build_recipe)
    shared = compile_recipe(write("from-file.yaml", FILE_RECIPE))
    assert shared.vectors["v"].provenance["kind"] == "file"
    assert torch.equal(shared.vectors["v"].tensor, original.vectors["v"].tensor)
    prompts = ["The weather today is", "My opinion of it:", "Hi"]
    logits = {
        name: trace_pass(c.model, c.plan, prompts, 8).next_logits
        for name, c in (("original", original), ("shared", shared))
    }
    assert torch.equal(logits["original"], logits["shared"])
    reports = {"original": run_recipe(original), "shared": run_recipe(shared)}
    as_json = {name: r.to_json() for name, r in reports.items()}
    assert as_json["original"]["prompts"] == as_json["shared"]["prompts"]
    assert as_json["original"]["metrics"] == as_json["shared"]["metrics"]
    # the steering is real: the vector moves the distribution
    assert reports["shared"].metric("kl_baseline").steered > 1e-3
    first = as_json["shared"]["prompts"][0]
    assert first["baseline"]["top_tokens"] != first["steered"]["top_tokens"]


def test_build_only(build_recipe: Path, tmp_path: Path, extractions: list[str]) -> None:
    out = tmp_path / "only.safetensors"
    assert cli("vectors", "build", build_recipe, "--out", out, "--only", "m", "e") == 0
    tensors, meta = read(out)
    assert set(tensors) == {"m", "e"}  # e's dependency v is built, not written
    assert set(json.loads(meta["vectors"])) == {"m", "e"}
    assert sorted(extractions) == ["layer1", "layer1", "layer2"]  # v (pos, neg) and m; not pc
    full = tmp_path / "full.safetensors"
    assert cli("vectors", "build", build_recipe, "--out", full) == 0
    assert torch.equal(tensors["e"], read(full)[0]["e"])


def test_build_only_unknown_name(
    build_recipe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.safetensors"
    assert cli("vectors", "build", build_recipe, "--out", out, "--only", "v", "nope") == 2
    assert "nope" in capsys.readouterr().err
    assert not out.exists()


def test_out_must_be_safetensors(
    build_recipe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.txt"
    assert cli("vectors", "build", build_recipe, "--out", out) == 2
    assert ".safetensors" in capsys.readouterr().err
    assert not out.exists()


FAILING_RECIPE = """\
version: 1
name: fails-late
model: {id: "builtin:tiny-random"}
vectors:
  fine: {kind: mean_activation, prompts: [one, two], layer: 1}
  r: {kind: random, seed: 1}
  far: {kind: contrastive, positive: [a long enough prompt, short], negative: [x, y],
        layer: 1, position: 12}
run: {mode: trace, prompts: [x]}
"""


@pytest.mark.parametrize("existing", [False, True])
def test_failed_build_leaves_no_file(
    write: Write, tmp_path: Path, capsys: pytest.CaptureFixture[str], existing: bool
) -> None:
    recipe = write("fails.yaml", FAILING_RECIPE)
    load_recipe(recipe)  # valid: the failure comes at extraction time
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "vectors.safetensors"
    if existing:
        out.write_bytes(b"previous contents")
    code = cli("vectors", "build", recipe, "--out", out)
    assert code != 0
    err = capsys.readouterr().err
    assert "position" in err and "12" in err
    assert sorted(p.name for p in folder.iterdir()) == (["vectors.safetensors"] if existing else [])
    if existing:
        assert out.read_bytes() == b"previous contents"


# -- steer vectors inspect -------------------------------------------------------------------


@pytest.fixture
def vector_file(build_recipe: Path, tmp_path: Path) -> Path:
    out = tmp_path / "inspect.safetensors"
    assert cli("vectors", "build", build_recipe, "--out", out) == 0
    return out


def expected_tokens(model: LoadedModel, vector: torch.Tensor, top: int) -> dict[str, Any]:
    """Top/bottom tokens of W_U v and of W_U ln_f(v), with plain tensors and the tokenizer."""
    hf = model.hf
    weight = hf.get_submodule("lm_head").weight  # tied to the embedding in GPT-2
    assert isinstance(weight, torch.Tensor) and weight.shape == (257, 64)
    weight = weight.detach().double()
    ln_f = hf.get_submodule("transformer.ln_f")
    with torch.no_grad():
        lens_input = ln_f(vector.unsqueeze(0))[0].double()
    views = {"raw": weight @ vector.double(), "lens": weight @ lens_input}
    result = {}
    for view, logits in views.items():
        order = np.argsort(-logits.numpy(), kind="stable")
        up, down = order[:top], order[::-1][:top]
        result[view] = {
            "boosted": [(model.tokenizer.decode([int(i)]), float(logits[i])) for i in up],
            "suppressed": [(model.tokenizer.decode([int(i)]), float(logits[i])) for i in down],
        }
    return result


def assert_effects(got: dict[str, Any], expected: dict[str, Any]) -> None:
    assert set(got) == {"raw", "lens"}
    for view in ("raw", "lens"):
        for side in ("boosted", "suppressed"):
            tokens = [t for t, _ in got[view][side]]
            assert tokens == [t for t, _ in expected[view][side]], (view, side)
            values = [x for _, x in got[view][side]]
            assert values == pytest.approx([x for _, x in expected[view][side]], abs=2e-4)


def test_inspect_json(
    vector_file: Path, gpt2: LoadedModel, capsys: pytest.CaptureFixture[str]
) -> None:
    tensors, meta = read(vector_file)
    provenance = json.loads(meta["vectors"])
    code = cli(
        "vectors", "inspect", vector_file, "--model", "builtin:tiny-random", "--format", "json"
    )
    assert code == 0
    info = json.loads(capsys.readouterr().out)
    assert info["metadata"]["recipe"] == "built-vectors"
    assert "vectors" not in info["metadata"]
    assert set(info["vectors"]) == set(tensors)
    for name, tensor in tensors.items():
        entry = info["vectors"][name]
        assert entry["norm"] == pytest.approx(float(np.linalg.norm(tensor.double())), abs=1e-5)
        assert entry["shape"] == [64] and entry["dtype"] == "float32" and entry["finite"]
        assert entry["provenance"] == provenance[name]
        assert_effects(entry["tokens"], expected_tokens(gpt2, tensor, 10))
        assert len(entry["tokens"]["raw"]["boosted"]) == 10

    table = info["cosine"]
    names = sorted(tensors)
    assert sorted(table) == names
    for a in names:
        assert table[a][a] == pytest.approx(1.0, abs=1e-6)
        for b in names:
            assert table[a][b] == table[b][a]
            va, vb = tensors[a].double().numpy(), tensors[b].double().numpy()
            independent = va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb))
            assert table[a][b] == pytest.approx(independent, abs=1e-5), (a, b)
    assert table["v"]["e"] == pytest.approx(1.0, abs=1e-6)
    assert table["v"]["n"] == pytest.approx(-1.0, abs=1e-6)
    assert abs(table["v"]["r"]) < 0.9


def test_inspect_top(
    vector_file: Path, gpt2: LoadedModel, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli("vectors", "inspect", vector_file, "--format", "json", "--top", "3")
    assert code == 0  # the model comes from the file's metadata
    info = json.loads(capsys.readouterr().out)
    tensors, _ = read(vector_file)
    for name in ("v", "r"):
        got = info["vectors"][name]["tokens"]
        assert len(got["raw"]["boosted"]) == len(got["lens"]["suppressed"]) == 3
        assert_effects(got, expected_tokens(gpt2, tensors[name], 3))


def test_inspect_text(
    vector_file: Path, gpt2: LoadedModel, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("vectors", "inspect", vector_file, "--model", "builtin:tiny-random") == 0
    text = capsys.readouterr().out
    tensors, meta = read(vector_file)
    assert f"recipe_sha256: {meta['recipe_sha256']}" in text
    for name, tensor in tensors.items():
        assert f"\n{name}: shape [64] float32, norm {float(tensor.norm()):.4g}" in text
        effects = expected_tokens(gpt2, tensor, 10)
        boosted = ", ".join(repr(t) for t, _ in effects["raw"]["boosted"])
        suppressed = ", ".join(repr(t) for t, _ in effects["lens"]["suppressed"])
        assert f"W_U v      boosts   {boosted}\n" in text, name
        assert f"suppresses {suppressed}\n" in text, name
    assert "kind=contrastive, layer=1, site=resid_post, position=mean, method=mean_diff" in text
    assert "cosine similarity" in text
    lines = text.split("cosine similarity\n", 1)[1].splitlines()
    row = next(line for line in lines[1:] if line.split()[0] == "v")
    values = [float(x) for x in row.split()[1:]]
    header = lines[0].split()
    assert values[header.index("v")] == 1.0
    assert values[header.index("e")] == 1.0
    assert values[header.index("n")] == -1.0


class Payload:
    """Unpickling this creates `marker`: proof that a file was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_inspect_refuses_a_pickle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], protocol: int
) -> None:
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(Payload(proof), protocol=protocol)).close()
    assert proof.exists()  # the payload works: were the file unpickled, the marker would appear
    marker = tmp_path / "unpickled"
    evil = tmp_path / "vectors.safetensors"
    evil.write_bytes(pickle.dumps(Payload(marker), protocol=protocol))
    assert cli("vectors", "inspect", evil, "--model", "builtin:tiny-random") == 2
    err = capsys.readouterr().err
    assert "safetensors" in err and str(evil) in err
    if protocol >= 2:
        assert "pickle" in err
    assert not marker.exists()


def test_inspect_refuses_a_pickle_exit_status(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    evil = tmp_path / "vectors.safetensors"
    torch.save(
        {"v": torch.zeros(3), "payload": Payload(marker)},
        evil,
        _use_new_zipfile_serialization=False,
    )
    result = subprocess.run(
        [sys.executable, "-m", "recipe_engine", "vectors", "inspect", str(evil)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 2
    assert "pickle" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not marker.exists()
