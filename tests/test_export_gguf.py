"""`steer export --format gguf-control-vector` writes llama.cpp's layout (read back here with the
gguf package's own reader), and `kind: file` reads it back: export -> import -> identical tensors,
with the layer taken from the tensor's name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from recipe_engine.errors import RecipeError
from recipe_engine.export import export_recipe
from recipe_engine.pipeline import compile_recipe, load_recipe
from tests.conftest import RECIPES

gguf = pytest.importorskip("gguf")

RECIPE = """\
version: 1
name: cv
include: [{fragment}]
interventions:
  - {{vector: sentiment, op: add, layers: {{1: 1.0, 3: 0.5}}, strength: 2.0}}
  - {{vector: sentiment, op: add, layers: 3, strength: -1.0}}
run: {{mode: trace, prompts: [The movie was]}}
"""


def _recipe(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "cv.yaml"
    path.write_text(body.format(fragment=RECIPES / "_fragments" / "tiny-model.yaml"))
    return path


def test_layout_values_and_round_trip(tmp_path: Path) -> None:
    compiled = compile_recipe(load_recipe(_recipe(tmp_path, RECIPE), allow_outside_root=True))
    raw = compiled.vectors["sentiment"].tensor.numpy()
    out = tmp_path / "cv.gguf"
    export_recipe(compiled, "gguf-control-vector", out)

    reader = gguf.GGUFReader(str(out))
    fields = {
        name: f.contents() for name, f in reader.fields.items() if not name.startswith("GGUF.")
    }
    assert fields["general.architecture"] == "controlvector"
    assert fields["controlvector.model_hint"] == "gpt2"
    assert fields["controlvector.layer_count"] == 2
    tensors = {t.name: np.array(t.data) for t in reader.tensors}
    assert sorted(tensors) == ["direction.1", "direction.3"]
    assert all(t.tensor_type == gguf.GGMLQuantizationType.F32 for t in reader.tensors)
    # hand-computed: strength x layer weight, summed per layer
    np.testing.assert_allclose(tensors["direction.1"], 2.0 * raw, rtol=0, atol=1e-6)
    np.testing.assert_allclose(tensors["direction.3"], (1.0 - 1.0) * raw, rtol=0, atol=1e-6)

    back = tmp_path / "back.yaml"
    back.write_text(
        "version: 1\nname: back\n"
        "model: {id: builtin:tiny-sentiment, dtype: float32}\n"
        "vectors:\n  d1: {kind: file, path: cv.gguf, key: direction.1}\n"
        "interventions: [{vector: d1, op: add, layers: 1}]\n"
        "run: {mode: trace, prompts: [hi]}\n"
    )
    imported = compile_recipe(load_recipe(back)).vectors["d1"]
    assert torch.equal(imported.tensor, torch.from_numpy(tensors["direction.1"]))
    assert imported.provenance["layer"] == 1 and imported.provenance["site"] == "resid_post"


def test_ops_llama_cpp_cannot_apply_are_refused_at_their_line(tmp_path: Path) -> None:
    body = RECIPE.replace("{{1: 1.0, 3: 0.5}}", "0").replace(
        "layers: 3, strength", "layers: 2, positions: last, strength"
    )
    with pytest.raises(RecipeError) as caught:
        loaded = load_recipe(_recipe(tmp_path, body), allow_outside_root=True)
        export_recipe(loaded, "gguf-control-vector", tmp_path / "x.gguf")
    lines = [d.format() for d in caught.value.diagnostics]
    assert any(
        ":5:" in line and "/interventions/0/layers" in line and "block 0" in line for line in lines
    )
    assert any(":6:" in line and "/interventions/1/positions" in line for line in lines)
    assert not (tmp_path / "x.gguf").exists()


@pytest.mark.parametrize(("fmt", "name"), [("gguf-control-vector", "x.gguf"), ("hf", "x")])
def test_prompt_groups_are_refused_by_every_format(tmp_path: Path, fmt: str, name: str) -> None:
    """A group at another strength steers its prompts otherwise: no export can hold that."""
    body = RECIPE.replace(
        "prompts: [The movie was]",
        "prompts: [{{name: gentle, prompts: [The movie was], strength: 0.5}}, Hello]",
    )
    with pytest.raises(RecipeError) as caught:
        loaded = load_recipe(_recipe(tmp_path, body), allow_outside_root=True)
        export_recipe(loaded, fmt, tmp_path / name)
    lines = [d.format() for d in caught.value.diagnostics]
    assert len(lines) == 1 and ":7:" in lines[0] and "/run/prompts" in lines[0], lines
    assert "prompt groups" in lines[0]
    assert not (tmp_path / name).exists()


def test_a_conditional_op_is_refused_at_its_when(tmp_path: Path) -> None:
    """llama.cpp adds on every input; an op gated by `when:` would be exported as unconditional."""
    with pytest.raises(RecipeError) as caught:
        export_recipe(
            RECIPES / "conditional-steering.yaml", "gguf-control-vector", tmp_path / "c.gguf"
        )
    lines = [d.format() for d in caught.value.diagnostics]
    assert any(
        "/interventions/0/when" in line and "llama.cpp adds always" in line for line in lines
    )
    assert not (tmp_path / "c.gguf").exists()
