"""The installable package seen from the command line: `steer --version`, `steer ls` /
`steer cp`, the one-line message when the run extra is missing, and `validate
--skip-non-recipes` with the pre-commit hook that uses it. The installs themselves (wheel,
extras, pre-commit) are checked in tests/test_packaging.py."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from recipe_engine import examples as examples_module
from recipe_engine.cli.main import main
from recipe_engine.validate import validate_file
from tests.conftest import RECIPES, REPO
from tests.helpers import run_steer

# the top gallery's recipes as NAME, then the real-model gallery's as real/NAME (issue 24 item
# 16: `steer ls` and `steer cp` knew nothing of recipes/real/)
EXAMPLE_NAMES = [
    *sorted(p.stem for p in RECIPES.glob("*.yaml") if not p.name.startswith("_")),
    *sorted(f"real/{p.stem}" for p in (RECIPES / "real").glob("*.yaml")),
]


# --- version ---------------------------------------------------------------------------------


def test_version_prints_the_installed_distribution_and_the_recipe_format(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out.strip()
    # References independent of the engine's code: the installed metadata (built by setuptools
    # from pyproject.toml) and the format version the committed JSON Schema accepts.
    schema = json.loads((REPO / "schemas" / "recipe.schema.json").read_text(encoding="utf-8"))
    version_field = schema["properties"]["version"]
    format_version = version_field.get("const", (version_field.get("enum") or [None])[0])
    assert out == (
        f"steer (recipe-engine) {importlib.metadata.version('recipe-engine')}, "
        f"recipe format {format_version}"
    )


def test_version_is_written_once() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in pyproject["project"]  # no second, static version
    assert pyproject["project"]["dynamic"] == ["version"]
    dynamic = pyproject["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "recipe_engine.version.__version__"}
    written = [
        p.relative_to(REPO).as_posix()
        for p in (REPO / "recipe_engine").rglob("*.py")
        if re.search(r"(?m)^__version__\s*=", p.read_text(encoding="utf-8"))
    ]
    assert written == ["recipe_engine/version.py"]


def test_changelog_has_an_unreleased_section_and_the_current_version() -> None:
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"(?m)^## \[([^\]]+)\]", text)
    assert headings[0] == "Unreleased"
    assert importlib.metadata.version("recipe-engine") in headings


# --- ls / cp ---------------------------------------------------------------------------------


def test_ls_lists_every_example_with_its_description(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert any(name.startswith("real/") for name in EXAMPLE_NAMES)
    expected = {
        name: yaml.safe_load((RECIPES / f"{name}.yaml").read_text(encoding="utf-8"))["description"]
        for name in EXAMPLE_NAMES
    }
    assert {row["name"]: row["description"] for row in rows} == expected
    assert main(["ls"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == EXAMPLE_NAMES
    assert all(line.split(None, 1)[1] == expected[line.split()[0]] for line in lines)


def _files_below(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_cp_copies_what_the_recipe_needs_and_the_copy_validates(name: str, tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()  # the copy is its own repository: nothing read outside it
    dest = tmp_path / "mine"
    assert main(["cp", name, str(dest)]) == 0
    files, source = _files_below(dest), (RECIPES / name).parent  # places relative to its folder
    recipe = f"{Path(name).name}.yaml"
    assert recipe in files
    for rel in files:  # byte for byte the shipped files, at the same relative places
        assert (dest / rel).read_bytes() == (source / rel).read_bytes()
    assert main(["validate", "--check-model", str(dest / recipe)]) == 0
    # Nothing more than needed: without any one of the other files, validation fails.
    for rel in sorted(files - {recipe}):
        held = dest / rel
        data = held.read_bytes()
        held.unlink()
        assert not validate_file(dest / recipe).ok, rel
        held.write_bytes(data)


def test_cp_from_the_command_line(tmp_path: Path) -> None:
    result = run_steer("cp", "vector-from-file", str(tmp_path / "mine"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"wrote {tmp_path / 'mine' / rel}"
        for rel in ("vector-from-file.yaml", "vectors/sentiment.safetensors")
    ]


def test_cp_never_overwrites_and_copies_nothing_then(tmp_path: Path) -> None:
    dest = tmp_path / "mine"
    (dest / "data").mkdir(parents=True)
    (dest / "data" / "positive.txt").write_text("my own prompts\n", encoding="utf-8")
    before = _files_below(dest)
    result = run_steer("cp", "activation-addition", str(dest))
    assert result.returncode == 2
    assert "positive.txt" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert _files_below(dest) == before
    assert (dest / "data" / "positive.txt").read_text(encoding="utf-8") == "my own prompts\n"


def test_cp_into_a_folder_that_has_identical_shared_files(tmp_path: Path) -> None:
    dest = tmp_path / "mine"
    assert run_steer("cp", "activation-addition", str(dest)).returncode == 0
    second = run_steer("cp", "multi-layer", str(dest))  # shares the fragment and data files
    assert second.returncode == 0, second.stderr
    assert (dest / "multi-layer.yaml").read_bytes() == (RECIPES / "multi-layer.yaml").read_bytes()


def test_cp_unknown_name_lists_the_examples(tmp_path: Path) -> None:
    result = run_steer("cp", "activation-additon", str(tmp_path / "x"))
    assert result.returncode == 2
    assert "activation-addition" in result.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("existing", [False, True])
def test_cp_failing_midway_leaves_the_destination_as_it_was(
    existing: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "mine"
    if existing:
        dest.mkdir()
        (dest / "notes.txt").write_text("mine\n", encoding="utf-8")
    real_copy = examples_module.shutil.copyfile
    calls: list[object] = []

    def failing_copy(src: object, dst: object) -> object:
        calls.append(src)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real_copy(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(examples_module.shutil, "copyfile", failing_copy)
    with pytest.raises(OSError):
        examples_module.copy_example("activation-addition", dest)
    if existing:
        assert _files_below(dest) == {"notes.txt"}
        assert [p.name for p in dest.iterdir()] == ["notes.txt"]  # no staging folder left
    else:
        assert not dest.exists()
        assert list(tmp_path.iterdir()) == []


# --- the run extra, missing ------------------------------------------------------------------

# Runs the CLI with the run extra's modules made impossible to import, as in a torch-free
# install (a meta-path finder that refuses them, like a missing package).
_WITHOUT_RUN_EXTRA = textwrap.dedent(
    """
    import importlib.abc, sys
    BLOCKED = {"torch", "nnsight", "transformers", "tokenizers", "safetensors", "tqdm",
               "matplotlib", "numpy", "huggingface_hub"}
    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, Refuse())
    from recipe_engine.cli.main import main
    code = main(sys.argv[1:])
    leaked = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
    assert not leaked, leaked
    sys.exit(code)
    """
)


def _without_run_extra(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_RUN_EXTRA, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["run", "recipes/activation-addition.yaml"],
        ["explain", "recipes/activation-addition.yaml"],
        ["vectors", "build", "recipes/activation-addition.yaml", "--out", "never.safetensors"],
        ["vectors", "inspect", "recipes/vectors/sentiment.safetensors"],
        ["sweep", "recipes/activation-addition.yaml", "--layers", "0", "--strengths", "1"],
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_a_model_command_without_the_run_extra_says_what_to_install(args: list[str]) -> None:
    result = _without_run_extra(*args)
    assert result.returncode == 3
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "pip install 'recipe-engine[run]'" in lines[0]
    assert lines[0].startswith(f"steer: error: steer {args[0]}")
    assert not (REPO / "never.safetensors").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "--check-model", "recipes/"],
        ["explain", "--no-model", "recipes/activation-addition.yaml"],
        ["explain", "--no-model", "recipes/head-ablation.yaml", "--format", "json"],
        ["ls"],
        ["--version"],
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_torch_free_commands_run_without_the_run_extra(args: list[str]) -> None:
    result = _without_run_extra(*args)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_explain_no_model_shows_the_interventions_as_written() -> None:
    result = _without_run_extra(
        "explain", "--no-model", "recipes/multi-layer.yaml", "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    written = yaml.safe_load((RECIPES / "multi-layer.yaml").read_text(encoding="utf-8"))
    assert info["plan"] is None
    assert info["model"] == {"id": "builtin:tiny-sentiment"}
    assert len(info["interventions"]) == len(written["interventions"])
    for shown, raw in zip(info["interventions"], written["interventions"], strict=True):
        for key, value in raw.items():
            assert shown[key] == (
                {str(k): v for k, v in value.items()} if isinstance(value, dict) else value
            )


def test_a_run_extra_module_missing_deep_inside_a_command_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """matplotlib is imported only when a sweep draws its plot, after the start-up check."""
    from recipe_engine.cli import schema

    def plot(args: object) -> int:
        raise ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib.pyplot")

    monkeypatch.setattr(schema, "run", plot)
    assert main(["schema", "--check"]) == 3
    err = capsys.readouterr().err
    assert err == (
        "steer: error: steer schema needs the run extra (matplotlib is not installed): "
        "pip install 'recipe-engine[run]'\n"
    )


# --- validate --skip-non-recipes and the pre-commit hook -------------------------------------

RECIPE = (RECIPES / "activation-addition.yaml").read_text(encoding="utf-8")

NOT_RECIPES = {
    ".github/workflows/ci.yml": "name: ci\non: [push]\njobs:\n  t:\n    runs-on: x\n"
    "    steps: [{run: steer validate .}]\n",
    ".pre-commit-config.yaml": "repos:\n  - repo: local\n    hooks: []\n",
    "docker-compose.yml": 'version: "3.8"\nservices:\n  web: {image: nginx}\n',
    "k8s.yaml": "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {}\n",
    "list.yaml": "- a\n- b\n",
    "empty.yaml": "",
    "mkdocs.yml": "site_name: docs\nnav: [index.md]\n",
}
# Recipes, valid or not: each must be validated, never skipped.
RECIPES_TO_CHECK = {
    "recipes/good.yaml": RECIPE,
    "recipes/no-version.yaml": RECIPE.replace("version: 1\n", ""),
    "recipes/broken-yaml.yaml": RECIPE.replace("version: 1\n", "version: 1\nmodel: [\n"),
    "recipes/typo.yaml": RECIPE.replace("strength:", "strenght:"),
}


def test_skip_non_recipes_validates_exactly_the_recipes(tmp_path: Path) -> None:
    for rel, text in {**NOT_RECIPES, **RECIPES_TO_CHECK}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    for rel in ("_fragments", "data"):  # what the copied recipe includes and reads
        (tmp_path / "recipes" / rel).mkdir()
        for src in (RECIPES / rel).iterdir():
            (tmp_path / "recipes" / rel / src.name).write_bytes(src.read_bytes())
    (tmp_path / ".git").mkdir()
    paths = [*NOT_RECIPES, *RECIPES_TO_CHECK]
    result = run_steer("validate", "--skip-non-recipes", "--format", "json", *paths, cwd=tmp_path)
    report = json.loads(result.stdout)
    assert {f["path"]: f["valid"] for f in report["files"]} == {
        "recipes/good.yaml": True,
        "recipes/no-version.yaml": False,
        "recipes/broken-yaml.yaml": False,
        "recipes/typo.yaml": False,
    }
    assert result.returncode == 1
    assert "skipped 7 YAML file(s) that are not recipes" in result.stderr
    only_good = run_steer(
        "validate", "--skip-non-recipes", *NOT_RECIPES, "recipes/good.yaml", cwd=tmp_path
    )
    assert only_good.returncode == 0, only_good.stdout + only_good.stderr
    # Without the flag, the same files are all recipes to validate: the flag is what skips.
    assert run_steer("validate", *NOT_RECIPES, cwd=tmp_path).returncode == 1


def test_the_hook_feeds_recipes_not_the_repository_config() -> None:
    """pre-commit's own selection (files/exclude regexes, `types: [yaml]`), applied to a recipe
    repository's files: the workflow, pre-commit's config and fragments never reach the hook."""
    hooks = {h["id"]: h for h in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())}
    hook = hooks["steer-validate"]
    assert hook["language"] == "python"
    assert hook["entry"].split() == ["steer", "validate", "--skip-non-recipes"]

    def fed(path: str) -> bool:
        return (
            re.search(hook.get("files", ""), path) is not None
            and re.search(hook.get("exclude", "^$"), path) is None
            and path.endswith((".yaml", ".yml"))  # types: [yaml]
        )

    assert hook.get("types") == ["yaml"]
    assert not fed(".pre-commit-config.yaml")
    assert not fed(".github/workflows/ci.yml")
    assert not fed("recipes/_fragments/model.yaml")
    assert fed("recipes/a.yaml") and fed("steer/b.yml") and fed("c.yaml")


# --- regression: a kl_baseline text file was neither validated nor copied ---------------------


def test_a_missing_kl_baseline_text_file_is_a_validation_error(write) -> None:  # type: ignore[no-untyped-def]
    """It used to pass validation and end `steer run` in an internal FileNotFoundError (found
    when the README demo ran from a `steer cp` copy that lacked data/passages.txt)."""
    from tests.conftest import MINIMAL
    from tests.helpers import codes

    path = write(
        "r.yaml",
        MINIMAL + "report:\n  metrics:\n    - kind: kl_baseline\n      text: {file: gone.txt}\n",
    )
    result = validate_file(path)
    assert codes(result) == ["file-not-found"]
    assert result.diagnostics[0].pointer == "/report/metrics/0/text/file"


def test_the_demo_runs_from_a_copy(tmp_path: Path) -> None:
    """The README's demo, from a `steer cp` copy outside the repository (in-process: the same
    engine as the installed wheel, which tests/test_packaging.py runs in CI)."""
    (tmp_path / ".git").mkdir()
    assert main(["cp", "activation-addition", str(tmp_path / "demo")]) == 0
    result = run_steer("run", "demo/activation-addition.yaml", "--format", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = {m["name"]: m for m in json.loads(result.stdout)["metrics"]}
    assert "kl_baseline:text" in metrics and "token_prob:positive" in metrics
