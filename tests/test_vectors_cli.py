"""`steer vectors build|inspect` at the command line: the --help examples work as written, and
each mistake (an unknown builtin, a model of another width, an --only name that does not exist)
is one clear line (issue 19 item 15)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recipe_engine.builtin_models import BUILTINS
from recipe_engine.cli import vectors as vectors_cli
from recipe_engine.cli.main import main
from tests.conftest import RECIPES, REPO


def _examples() -> list[str]:
    lines = vectors_cli.EPILOG.split("examples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    return [line.strip() for line in lines if line.strip().startswith("steer ")]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch folder holding a copy of recipes/ (outputs never land in the checkout), with
    the examples' sentiment.safetensors built once."""
    root = tmp_path_factory.mktemp("vectors-cli")
    shutil.copytree(RECIPES, root / "recipes")
    (root / ".git").mkdir()
    code = main(
        [
            "vectors",
            "build",
            str(root / "recipes/activation-addition.yaml"),
            "--out",
            str(root / "sentiment.safetensors"),
        ]
    )
    assert code == 0
    return root


def test_the_help_examples_work_as_written(built: Path) -> None:
    examples = _examples()
    assert len(examples) == 4
    env = {**os.environ, "NO_COLOR": "1", "HF_HUB_OFFLINE": "1"}
    for example in examples:
        argv = shlex.split(example)[1:]
        done = subprocess.run(
            [sys.executable, "-m", "recipe_engine", *argv],
            cwd=built,
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert done.returncode == 0, (example, done.stderr)
        assert "warning" not in done.stderr, (example, done.stderr)
        if "--model" in argv:  # the token analysis the example is there to show
            assert "boosts" in done.stdout, example


def test_an_unknown_builtin_is_a_usage_error_listing_the_builtins(
    built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["vectors", "inspect", str(built / "sentiment.safetensors"), "--model", "builtin:nope"]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no builtin model 'nope'" in err[0]
    for name in BUILTINS:
        assert f"builtin:{name}" in err[0]


def test_a_model_of_another_width_says_why_there_is_no_token_analysis(
    built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "vectors",
            "inspect",
            str(built / "sentiment.safetensors"),
            "--model",
            "builtin:tiny-random",
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    assert "boosts" not in captured.out
    # tiny-random is 64 wide (README, Builtin models); the sentiment vector 192.
    assert (
        "steer: warning: no token analysis of sentiment with builtin:tiny-random "
        "(width 192, the model's is 64)" in captured.err
    )


def test_only_with_an_unknown_name_lists_the_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "vectors",
            "build",
            str(RECIPES / "mean-ablation.yaml"),
            "--out",
            str(tmp_path / "m.safetensors"),
            "--only",
            "mlp_mean_1",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "no vector named mlp_mean_1" in err and "(it defines: heads_mean)" in err
    assert not (tmp_path / "m.safetensors").exists()


def test_examples_name_real_files_and_vectors() -> None:
    for example in _examples():
        for word in shlex.split(example):
            if word.startswith("recipes/"):
                assert (REPO / word).is_file(), word
